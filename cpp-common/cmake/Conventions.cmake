# The conventions server/ and loadgen/ share: C++20, the same warnings as
# errors, Release at -O2 by default, SANITIZE=ON (ASan + UBSan), FUZZ=ON
# (libFuzzer targets, needs clang), and the shared headers (include/orch/).
# Each project includes it through its own cpp-common/ link (../README.md).

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release)
endif()

option(SANITIZE "Build with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
option(FUZZ "Build the libFuzzer target of the project's parser (needs clang)" OFF)

# A compiler cache where one is installed (setup.sh installs ccache): the same sources with
# the same flags compile once per machine, wherever they are unpacked. base_dir (the project's
# source directory) makes the paths in the compile commands relative, so a build role's copy
# under <root>/src/<project> and the repository's own tree share their objects.
find_program(ORCH_CCACHE ccache)
if(ORCH_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}
      ${ORCH_CCACHE})
endif()

set(ORCH_WARNINGS -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion
                  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual)
set(ORCH_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/../include)
find_package(Threads REQUIRED)

# The project's static library (everything but main.cc): src/ and the shared
# headers on its users' include path, threads, and the sanitizers for
# everything linked with it.
function(orch_core_library target)
  add_library(${target} STATIC ${ARGN})
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src ${ORCH_INCLUDE_DIR})
  target_compile_options(${target} PRIVATE ${ORCH_WARNINGS})
  target_link_libraries(${target} PUBLIC Threads::Threads)
  if(CMAKE_BUILD_TYPE STREQUAL "Release")
    target_compile_options(${target} PRIVATE -O2)
  endif()
  if(SANITIZE)
    set(san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_compile_options(${target} PUBLIC ${san})
    target_link_options(${target} PUBLIC ${san})
  endif()
endfunction()

# The program: main.cc over the core library.
function(orch_program name core)
  add_executable(${name} src/main.cc)
  target_compile_options(${name} PRIVATE ${ORCH_WARNINGS})
  target_link_libraries(${name} PRIVATE ${core})
endfunction()

# A libFuzzer target over a few sources (configure with CXX=clang++ -DFUZZ=ON).
function(orch_fuzz_target name)
  add_executable(${name} ${ARGN})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src ${ORCH_INCLUDE_DIR})
  target_compile_options(${name} PRIVATE ${ORCH_WARNINGS}
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
endfunction()
