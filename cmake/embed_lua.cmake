# Generates queue_scripts.h: each transition script with lib.lua prepended, as a raw string.
# Invoked by common/CMakeLists.txt at build time (cmake -P) so that editing a .lua file rebuilds.
file(READ "${LUA_DIR}/lib.lua" lib)
set(out "// Generated from common/queue/lua/*.lua by cmake/embed_lua.cmake. Do not edit.\n#pragma once\n\nnamespace scenefarm::queue::scripts {\n")
foreach(name ${SCRIPTS})
  file(READ "${LUA_DIR}/${name}.lua" body)
  string(APPEND out "inline constexpr char k_${name}[] = R\"LUA(${lib}\n${body})LUA\";\n")
endforeach()
string(APPEND out "}  // namespace scenefarm::queue::scripts\n")
file(WRITE "${OUT}.tmp" "${out}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
