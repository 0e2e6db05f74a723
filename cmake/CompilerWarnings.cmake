# Warnings and sanitizers as INTERFACE targets, so each target opts in explicitly.
add_library(usersync_warnings INTERFACE)
target_compile_options(usersync_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wconversion -Wsign-conversion -Wformat=2
  -Wimplicit-fallthrough)

add_library(usersync_sanitizers INTERFACE)
if(USERSYNC_SANITIZE)
  target_compile_options(usersync_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(usersync_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
