# Generates queue_scripts.h: each transition script with lib.lua prepended, as a raw string.
# Invoked by common/CMakeLists.txt at build time (cmake -P) so that editing a .lua file rebuilds.
# With -DLUA_OUT_DIR=DIR it also writes each script as Redis runs it to DIR/<name>.lua
# (bench/scripts_ab.py loads them so); with -DLUA_WHOLE_LIB=ON lib.lua is prepended whole.
#
# Only what a script uses of lib.lua goes in front of it (issue #14): Redis runs lib.lua's top
# level on every call, and each `local function` there is a closure made anew each time, so
# heartbeat.lua paid ~8 us a call for the ~30 definitions it never calls. lib.lua is cut into
# top-level statements, each from a line starting in column 0 to the next; a definition
# (`local function NAME` or `local NAME... =`) is kept when its name occurs in the script or
# in a statement kept before, any other statement always. Occurs means as a word anywhere,
# comments and strings included: a name only mentioned keeps its definition, never the other
# way round. A definition left out becomes as many empty lines, so that a line number in an
# error from Redis is the same line of lib.lua or the script as before. A `local NAME =` whose
# first line calls into Redis (`redis.`) is always kept; any other right side must do nothing
# but give the name a value. A line in column 0 that begins no statement (a continuation) stops
# the build.

cmake_minimum_required(VERSION 3.16)  # list() keeps empty lines; IN_LIST

# Lua text as a CMake list of lines: ';' and brackets (list syntax in CMake) become markers.
function(lua_lines text out)
  string(REPLACE "@" "@a" text "${text}")
  string(REPLACE ";" "@s" text "${text}")
  string(REPLACE "[" "@o" text "${text}")
  string(REPLACE "]" "@c" text "${text}")
  string(REPLACE "\\" "@b" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(lua_unmark text out)
  string(REPLACE "@b" "\\" text "${text}")
  string(REPLACE "@c" "]" text "${text}")
  string(REPLACE "@o" "[" text "${text}")
  string(REPLACE "@s" ";" text "${text}")
  string(REPLACE "@a" "@" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The words of a text, as a list (a marked one is read unmarked).
function(lua_words text out)
  lua_unmark("${text}" text)
  string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*" words "${text}")
  set(${out} "${words}" PARENT_SCOPE)
endfunction()

function(trimmed_lib lib body out)
  lua_lines("${lib}" lines)
  list(LENGTH lines n)
  # Statements: the lines where one starts in column 0 (an `end` or a closing bracket does not).
  set(starts "")
  math(EXPR last "${n} - 1")
  foreach(i RANGE 0 ${last})
    list(GET lines ${i} line)
    if(line MATCHES "^[^ \t-]" AND NOT line MATCHES "^(end([^A-Za-z0-9_]|$)|}|\\))")
      # Anything else in column 0 must begin a statement: a continuation line there (a table's
      # or a string's) would cut a statement in two.
      if(NOT line MATCHES "^[A-Za-z_]")
        math(EXPR at "${i} + 1")
        lua_unmark("${line}" shown)
        message(FATAL_ERROR "lib.lua:${at}: a line in column 0 that begins no statement "
                            "(indent it): ${shown}")
      endif()
      list(APPEND starts ${i})
    endif()
  endforeach()
  # A statement's region: from the comment lines right above it (they go and stay with it) to
  # the next region.
  set(bounds "")
  set(prev -1)
  foreach(s ${starts})
    set(b ${s})
    math(EXPR above "${b} - 1")
    while(above GREATER prev)
      list(GET lines ${above} line)
      if(NOT line MATCHES "^--")
        break()
      endif()
      set(b ${above})
      math(EXPR above "${b} - 1")
    endwhile()
    list(APPEND bounds ${b})
    set(prev ${s})
  endforeach()
  list(LENGTH starts count)
  set(words "")
  lua_words("${body}" words)
  list(REMOVE_DUPLICATES words)
  set(keep "")
  math(EXPR lastc "${count} - 1")
  # Walk the statements from the last to the first until nothing changes: a statement's
  # definitions are used by the script or by statements after it (lib.lua defines before use).
  set(changed TRUE)
  while(changed)
    set(changed FALSE)
    foreach(j RANGE 0 ${lastc})
      math(EXPR k "${lastc} - ${j}")
      if(k IN_LIST keep)
        continue()
      endif()
      list(GET starts ${k} s)
      list(GET lines ${s} first)
      set(names "")
      if(first MATCHES "^local function ([A-Za-z_][A-Za-z0-9_]*)")
        set(names ${CMAKE_MATCH_1})
      elseif(first MATCHES "^local ([A-Za-z_][A-Za-z0-9_]*( *, *[A-Za-z_][A-Za-z0-9_]*)*) *=")
        string(REPLACE "," ";" names "${CMAKE_MATCH_1}")
        string(REPLACE " " "" names "${names}")
        string(REGEX REPLACE "--.*" "" code "${first}")  # its comment may name redis.call
        if(code MATCHES "redis\\.")
          set(names "")  # a value that asks Redis for something: always kept, the call must run
        endif()
      endif()
      set(used FALSE)
      if(names STREQUAL "")
        set(used TRUE)  # not a definition: always kept
      endif()
      foreach(name ${names})
        if(name IN_LIST words)
          set(used TRUE)
        endif()
      endforeach()
      if(used)
        list(APPEND keep ${k})
        set(changed TRUE)
        math(EXPR k1 "${k} + 1")
        list(GET bounds ${k} b)
        set(e ${n})
        if(k1 LESS count)
          list(GET bounds ${k1} e)
        endif()
        math(EXPR len "${e} - ${b}")
        list(SUBLIST lines ${b} ${len} region)
        lua_words("${region}" w)
        list(APPEND words ${w})
        list(REMOVE_DUPLICATES words)
      endif()
    endforeach()
  endwhile()
  # The kept statements in their place, each left-out line empty.
  set(text "")
  set(k -1)
  set(next_start 0)
  if(count GREATER 0)
    list(GET bounds 0 next_start)
  endif()
  set(kept TRUE)
  foreach(i RANGE 0 ${last})
    if(count GREATER 0 AND i EQUAL next_start)
      math(EXPR k "${k} + 1")
      set(kept FALSE)
      if(k IN_LIST keep)
        set(kept TRUE)
      endif()
      math(EXPR k1 "${k} + 1")
      set(next_start ${n})
      if(k1 LESS count)
        list(GET bounds ${k1} next_start)
      endif()
    endif()
    if(kept)
      list(GET lines ${i} line)
      string(APPEND text "${line}")
    endif()
    if(i LESS last)
      string(APPEND text "\n")
    endif()
  endforeach()
  lua_unmark("${text}" text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

file(READ "${LUA_DIR}/lib.lua" lib)
set(out "// Generated from common/queue/lua/*.lua by cmake/embed_lua.cmake. Do not edit.\n#pragma once\n\nnamespace scenefarm::queue::scripts {\n")
foreach(name ${SCRIPTS})
  file(READ "${LUA_DIR}/${name}.lua" body)
  if(LUA_WHOLE_LIB)
    set(front "${lib}")
  else()
    trimmed_lib("${lib}" "${body}" front)
  endif()
  string(APPEND out "inline constexpr char k_${name}[] = R\"LUA(${front}\n${body})LUA\";\n")
  if(LUA_OUT_DIR)
    file(WRITE "${LUA_OUT_DIR}/${name}.lua" "${front}\n${body}")
  endif()
endforeach()
# Every script by its name (the tests read them all).
string(APPEND out "struct Named {\n  const char* name;\n  const char* text;\n};\ninline constexpr Named k_all[] = {\n")
foreach(name ${SCRIPTS})
  string(APPEND out "    {\"${name}\", k_${name}},\n")
endforeach()
string(APPEND out "};\n}  // namespace scenefarm::queue::scripts\n")
if(OUT)
  file(WRITE "${OUT}.tmp" "${out}")
  file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
endif()
