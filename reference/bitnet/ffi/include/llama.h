/* llama.h of bitnet-compat: `-I` this directory instead of llama.cpp's include dir and a
 * program written for llama.cpp 0.3.36 builds against libbitnet_ffi. See bitnet_ffi.h. */
#include "bitnet_ffi.h"
