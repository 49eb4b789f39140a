# Installs headers, the component libraries and a CMake config package:
#   find_package(informer REQUIRED)                        every component and informer::informer
#   find_package(informer REQUIRED COMPONENTS apiserver)   informer::apiserver (+ core, codec) only
# Each component has its own export file, so the config package loads (and finds the dependencies
# of) only the components asked for and those they need.
include(CMakePackageConfigHelpers)

set(informer_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/informer)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/informer DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
foreach(component IN ITEMS core codec apiserver etcd)
  install(TARGETS informer_${component} EXPORT informer-${component}-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT informer-${component}-targets NAMESPACE informer:: DESTINATION ${informer_cmake_dir})
endforeach()
install(TARGETS informer EXPORT informer-targets)
install(EXPORT informer-targets NAMESPACE informer:: DESTINATION ${informer_cmake_dir})

# A static library's private dependencies are needed when linking its consumers; a shared
# library's are not. The config file finds them only in the first case.
get_target_property(informer_library_type informer_core TYPE)
if(informer_library_type STREQUAL "STATIC_LIBRARY")
  set(INFORMER_STATIC ON)
else()
  set(INFORMER_STATIC OFF)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/informer-config.cmake.in
  ${PROJECT_BINARY_DIR}/informer-config.cmake INSTALL_DESTINATION ${informer_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/informer-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/informer-config.cmake ${PROJECT_BINARY_DIR}/informer-config-version.cmake
  DESTINATION ${informer_cmake_dir})
