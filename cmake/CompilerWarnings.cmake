# Warnings and sanitizers as INTERFACE targets, so each target opts in explicitly.
add_library(usersync_warnings INTERFACE)
target_compile_options(usersync_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wconversion -Wsign-conversion -Wformat=2
  -Wimplicit-fallthrough)

add_library(usersync_sanitizers INTERFACE)
if(USERSYNC_SANITIZE AND USERSYNC_TSAN)
  message(FATAL_ERROR "USERSYNC_SANITIZE (ASan+UBSan) and USERSYNC_TSAN cannot be combined")
endif()
if(USERSYNC_TSAN)
  target_compile_options(usersync_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(usersync_sanitizers INTERFACE -fsanitize=thread)
endif()
if(USERSYNC_SANITIZE)
  target_compile_options(usersync_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(usersync_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
