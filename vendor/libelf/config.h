/* Configuration of the vendored libelf (elfutils), written for this project instead of running
 * elfutils' configure, which needs argp/fts/obstack (absent on musl) and builds with -Werror.
 * Only the macros that libelf/ and lib/ actually read are set.  Each platform difference is
 * detected here rather than assumed, so one file serves glibc and musl, 32 and 64 bit. */
#ifndef PYBPF_LIBELF_CONFIG_H
#define PYBPF_LIBELF_CONFIG_H

#define PACKAGE "elfutils"
#define PACKAGE_NAME "elfutils"
#define PACKAGE_VERSION "0.192"
#define PACKAGE_STRING "elfutils 0.192"
#define PACKAGE_TARNAME "elfutils"
#define PACKAGE_URL ""
#define PACKAGE_BUGREPORT ""
#define VERSION "0.192"

/* Large files on 32-bit targets.  Not on 64-bit: there new glibc would redirect fcntl to
 * fcntl64@GLIBC_2.28 and raise the wheel's glibc floor for nothing. */
#if !defined(_FILE_OFFSET_BITS) && defined(__SIZEOF_LONG__) && __SIZEOF_LONG__ == 4
# define _FILE_OFFSET_BITS 64
#endif

/* Compression: zlib only (libbpf needs it for compressed sections); no zstd, bzip2, lzma.
 * No USE_LOCKS: libbpf never shares an Elf handle between threads. No symbol versioning:
 * everything is linked statically and hidden. */
#define USE_ZLIB 1
#define CHECK_UNDEFINED 0

#define HAVE_STDATOMIC_H 1
#define HAVE_VISIBILITY 1
#define HAVE_MREMAP 1

#if defined(__has_attribute)
# if __has_attribute(fallthrough)
#  define HAVE_FALLTHROUGH 1
# endif
#endif

/* gcc_struct only exists for gcc on x86. */
#if (defined(__i386__) || defined(__x86_64__)) && !defined(__clang__)
# define HAVE_GCC_STRUCT 1
#endif

/* glibc has <error.h>, musl does not; lib/system.h provides a fallback. */
#if defined(__has_include)
# if __has_include(<error.h>)
#  define HAVE_ERROR_H 1
# endif
# if __has_include(<err.h>)
#  define HAVE_ERR_H 1
# endif
#else
# define HAVE_ERROR_H 1
# define HAVE_ERR_H 1
#endif

/* rawmemchr is glibc-only and memrcchr is not everywhere: the code has fallbacks for both. */
#define HAVE_DECL_RAWMEMCHR 0
#define HAVE_DECL_MEMRCHR 0
#define HAVE_DECL_MEMPCPY 1

/* powerof2 is a glibc macro in <sys/param.h>; musl lacks it. */
#include <sys/param.h>
#ifdef powerof2
# define HAVE_DECL_POWEROF2 1
#else
# define HAVE_DECL_POWEROF2 0
#endif

/* reallocarray exists in glibc >= 2.26 and musl >= 1.2.2 only, and clashes with the
 * static-inline fallback in lib/system.h where it does.  Declare the C library's first, then
 * rename ours so the fallback is always used and never collides. */
#include <stdlib.h>
#define reallocarray eu_reallocarray
#define HAVE_DECL_REALLOCARRAY 0

#include <eu-config.h>

#endif
