# C++ for etcd's gRPC API, generated from proto/etcd/*.proto (our own minimal description of etcd's
# messages and services) into the build tree and compiled into `informer_etcd`. Only src/etcd includes
# the generated headers; no public header does, so they are neither installed nor exported.
find_program(INFORMER_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED DOC "gRPC's protoc plugin for C++")
if(TARGET protobuf::protoc)
  set(informer_protoc $<TARGET_FILE:protobuf::protoc>)
else()
  set(informer_protoc ${Protobuf_PROTOC_EXECUTABLE})
endif()

set(informer_proto_root ${PROJECT_SOURCE_DIR}/proto)
set(informer_etcd_generated ${PROJECT_BINARY_DIR}/generated/etcd_proto)
file(GLOB informer_etcd_protos CONFIGURE_DEPENDS ${informer_proto_root}/etcd/*.proto)

set(informer_etcd_outputs)
set(informer_etcd_headers)
set(informer_etcd_sources)
foreach(proto IN LISTS informer_etcd_protos)
  get_filename_component(stem ${proto} NAME_WE)
  set(out ${informer_etcd_generated}/etcd/${stem})
  list(APPEND informer_etcd_outputs ${out}.pb.h ${out}.pb.cc ${out}.grpc.pb.h ${out}.grpc.pb.cc)
  list(APPEND informer_etcd_headers ${out}.pb.h ${out}.grpc.pb.h)
  list(APPEND informer_etcd_sources ${out}.pb.cc)
  # Only files that declare a service get gRPC stubs worth compiling.
  file(STRINGS ${proto} declares_service REGEX "^service ")
  if(declares_service)
    list(APPEND informer_etcd_sources ${out}.grpc.pb.cc)
  endif()
endforeach()

# Paths relative to proto/, so the generated code includes "etcd/kv.pb.h" and so on.
list(TRANSFORM informer_etcd_protos REPLACE "^${informer_proto_root}/" "" OUTPUT_VARIABLE informer_etcd_relative)
add_custom_command(
  OUTPUT ${informer_etcd_outputs}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${informer_etcd_generated}
  COMMAND ${informer_protoc} --proto_path=${informer_proto_root}
          --cpp_out=${informer_etcd_generated} --grpc_out=${informer_etcd_generated}
          --plugin=protoc-gen-grpc=${INFORMER_GRPC_CPP_PLUGIN} ${informer_etcd_relative}
  DEPENDS ${informer_etcd_protos}
  COMMENT "Generating C++ for etcd's gRPC API"
  VERBATIM)

# Generated code is not ours to warn about.
set_source_files_properties(${informer_etcd_sources} PROPERTIES COMPILE_OPTIONS "-w")
# The headers are listed too so that every source of the target waits for the generator.
target_sources(informer_etcd PRIVATE ${informer_etcd_headers} ${informer_etcd_sources})
target_include_directories(informer_etcd PRIVATE $<BUILD_INTERFACE:${informer_etcd_generated}>)
