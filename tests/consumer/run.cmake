# Installs the built project into a scratch prefix, then, for each component (and the umbrella),
# configures, builds and runs the consumer project against it in a build tree of its own. Checks
# that a program without etcd links no gRPC (nor etcd's generated code), that core alone links no
# OpenSSL, yaml-cpp or protobuf either, and that an unknown component is refused.
# Invoked by CTest with -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=...
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed")
endif()

function(configure component rc_var output_var)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${WORK_DIR}/${component}
                          -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
                          -DINFORMER_COMPONENT=${component}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(${rc_var} ${rc} PARENT_SCOPE)
  set(${output_var} "${output}" PARENT_SCOPE)
endfunction()

# What a program must not depend on: shared libraries (readelf -d) and symbols (nm).
set(core_forbidden_libraries "libgrpc|libprotobuf|libssl|libcrypto|libyaml-cpp")
set(apiserver_forbidden_libraries "libgrpc")
set(core_forbidden_symbols "etcdserverpb|informer::etcd::|informer::http_client")
set(apiserver_forbidden_symbols "etcdserverpb|informer::etcd::")

foreach(component IN ITEMS core apiserver etcd umbrella)
  configure(${component} rc output)
  if(rc)
    message(FATAL_ERROR "configuring the ${component} consumer failed:\n${output}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/${component} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "building the ${component} consumer failed")
  endif()
  set(program ${WORK_DIR}/${component}/consumer_${component})
  execute_process(COMMAND ${program} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "the ${component} consumer failed")
  endif()

  if(DEFINED ${component}_forbidden_libraries)
    execute_process(COMMAND readelf -d ${program} OUTPUT_VARIABLE dynamic COMMAND_ERROR_IS_FATAL ANY)
    string(REGEX MATCHALL "NEEDED[^\n]*(${${component}_forbidden_libraries})[^\n]*" found "${dynamic}")
    if(found)
      message(FATAL_ERROR "the ${component} consumer depends on ${found}")
    endif()
    execute_process(COMMAND nm -C ${program} OUTPUT_VARIABLE symbols COMMAND_ERROR_IS_FATAL ANY)
    string(REGEX MATCH "[^\n]*(${${component}_forbidden_symbols})[^\n]*" found "${symbols}")
    if(found)
      message(FATAL_ERROR "the ${component} consumer contains ${found}")
    endif()
  endif()
endforeach()

configure(bogus rc output)
if(NOT rc OR NOT output MATCHES "Unknown component 'bogus'")
  message(FATAL_ERROR "find_package(informer COMPONENTS bogus) was not refused as it should:\n${output}")
endif()
