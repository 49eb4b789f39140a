# Installs headers, the library and a CMake config package so that consumers can write
#   find_package(informer REQUIRED)  +  target_link_libraries(app PRIVATE informer::informer)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/informer DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS informer EXPORT informer-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(informer_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/informer)
install(EXPORT informer-targets NAMESPACE informer:: DESTINATION ${informer_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/informer-config.cmake.in
  ${PROJECT_BINARY_DIR}/informer-config.cmake INSTALL_DESTINATION ${informer_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/informer-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/informer-config.cmake ${PROJECT_BINARY_DIR}/informer-config-version.cmake
  DESTINATION ${informer_cmake_dir})
