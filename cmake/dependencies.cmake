# Every dependency comes from Debian's packages (scripts/install-deps.sh installs them).
# Debian may carry Boost 1.74 as well; the config package of 1.81 is the one we build against
# (no EXACT: the config file's version is 1.81.0).
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS json system)
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(yaml-cpp REQUIRED CONFIG)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
