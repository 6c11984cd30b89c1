# tide_add_test(NAME <name> SOURCES <src...> LABEL <unit|mp|mpi|rdma|fault|fuzz>
#               TIMEOUT <seconds> [ENV <VAR=VALUE...>] [ARGS <args...>])
# One executable per test, linked to the internal (static) library and
# cmocka; every test carries a timeout, because a hung collective is the
# typical failure.
function(tide_add_test)
  cmake_parse_arguments(T "" "NAME;LABEL;TIMEOUT" "SOURCES;ENV;ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    message(FATAL_ERROR "tide_add_test(${T_NAME}): TIMEOUT is required")
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE tide_internal tide_testlib ${CMOCKA_LIBRARIES})
  target_include_directories(${T_NAME} PRIVATE ${CMOCKA_INCLUDE_DIRS})
  target_compile_options(${T_NAME} PRIVATE ${TIDE_WARNINGS})
  add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
  # Tests never advertise a non-loopback address; leaks inside third-party
  # libraries (libpmix) are not Tide's (tests/lsan.supp).
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS ${T_LABEL}
    ENVIRONMENT "TIDE_BOOTSTRAP_ADDR=127.0.0.1;LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp;${T_ENV}")
endfunction()
