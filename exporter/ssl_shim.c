/* Debian bookworm's civetweb 1.15 loads libssl at run time by the name "libssl.so" and looks up
 * SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it became a macro for
 * SSL_get1_peer_certificate). The null pointer it gets crashes the first TLS connection.
 * This library has the SONAME "libssl.so", links the real libssl.so.3 and adds that one symbol;
 * the exporter loads it (RTLD_GLOBAL) before civetweb initialises TLS, so civetweb's
 * dlopen("libssl.so") finds it and every other symbol resolves through its libssl.so.3. */
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *s);
X509 *SSL_get_peer_certificate(const SSL *s) { return SSL_get1_peer_certificate(s); }
