# Layering checks: each probe is a source of one layer (it links what that
# layer links, PRIVATE) that includes a header. Probes of forbidden includes
# must fail to build, naming the header; the controls must build. They are
# built by the test itself (EXCLUDE_FROM_ALL), one at a time.
function(ms_layering_probe name lib header expect_fail)
  add_library(layering_${name} OBJECT EXCLUDE_FROM_ALL ${CMAKE_CURRENT_SOURCE_DIR}/layering/${name}.cpp)
  target_link_libraries(layering_${name} PRIVATE ${lib})
  add_test(NAME layering.${name}
           COMMAND ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR} --target layering_${name})
  set_tests_properties(layering.${name} PROPERTIES RESOURCE_LOCK build_tree TIMEOUT 300)
  if(expect_fail)
    string(REPLACE "." "\\." h "${header}")
    set_tests_properties(layering.${name} PROPERTIES
      PASS_REGULAR_EXPRESSION "${h}: No such file|'${h}' file not found")
  endif()
endfunction()

ms_layering_probe(kernels_includes_model ms_kernels model/mixtral.h TRUE)
ms_layering_probe(engine_includes_model ms_engine model/mixtral.h TRUE)
ms_layering_probe(core_includes_format ms_core format/model_desc.h TRUE)
ms_layering_probe(engine_includes_batch ms_engine "" FALSE)
ms_layering_probe(model_includes_kernels ms_model "" FALSE)
