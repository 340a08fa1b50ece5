/* Shared declarations of the _bpf extension.
 *
 * The module is compiled as one translation unit (_bpfmodule.c #includes every per-concern
 * .c file), so everything here is static and nothing but PyInit__bpf is exported.
 *
 * Locking model: the GIL guards every field of every object below.  A method reads what it
 * needs (fd, sizes, buffers) with the GIL held, releases it around the syscall, and takes it
 * back before touching Python objects or these fields again.
 */
#ifndef PYBPF_H
#define PYBPF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* kernel-internal, but the bpf() syscall returns it */
#endif

/* ---- module state ------------------------------------------------------------------------ */

typedef struct {
    /* exceptions (strong references) */
    PyObject *BPFError;
    PyObject *KeyNotFoundError;
    PyObject *KeyExistsError;
    PyObject *VerifierError;
    PyObject *NotSupportedError;
    PyObject *PermissionError;
    /* types (strong references); NULL until that concern's init ran */
    PyTypeObject *Map_Type;
    PyTypeObject *Program_Type;
    PyTypeObject *Object_Type;
    PyTypeObject *Link_Type;
    PyTypeObject *BTF_Type;
    PyTypeObject *RingBuffer_Type;
    PyTypeObject *PerfBuffer_Type;
    PyTypeObject *UserRingBuffer_Type;
} pybpf_state;

static struct PyModuleDef pybpf_module_def;

static pybpf_state *pybpf_state_from_module(PyObject *m);
/* State for a method of one of our types, also when called on a Python subclass. */
static pybpf_state *pybpf_state_from_type(PyTypeObject *tp);
#define PYBPF_STATE(self) pybpf_state_from_type(Py_TYPE(self))
/* Create a concern's type, store it in *slot, add it (and functions, may be NULL) to m. */
static int pybpf_add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **slot,
                          PyMethodDef *functions);

/* ---- the fd-owning base (fd.c) -------------------------------------------------------------
 * Every fd-owning object (Map, Program, Link, BTF, readers) starts with this struct.
 *
 *   fd        the descriptor; -1 once closed.
 *   owns_fd   1 if close()/dealloc must close(fd); 0 after detach() or for borrowed fds.
 *   closing   close() was called while calls were in flight: new calls are refused and the
 *             last call to finish closes the fd, so the number is never reused mid-syscall.
 *   inflight  calls between pybpf_enter() and pybpf_leave() (GIL-guarded counter).
 *   kind      "map", "program", ... for messages.
 *   release   optional hook that frees what the object holds besides the fd (libbpf
 *             structures, mmaps); called once, with the GIL, before the fd is closed.
 */
typedef struct PyBPF_FdObject PyBPF_FdObject;
typedef void (*pybpf_release_fn)(PyBPF_FdObject *self);

struct PyBPF_FdObject {
    PyObject_HEAD
    int fd;
    unsigned char owns_fd;
    unsigned char closing;
    int inflight;
    const char *kind;
    pybpf_release_fn release;
    PyObject *weakreflist;
};

/* Closed, or closing with calls in flight: either way the object takes no new calls. */
static inline int
pybpf_fd_closed(const PyBPF_FdObject *o)
{
    return o->fd < 0 || o->closing;
}

/* 0 if open, else -1 with ValueError "operation on closed <kind>". */
static inline int
pybpf_check_open(const PyBPF_FdObject *o)
{
    if (pybpf_fd_closed(o)) {
        PyErr_Format(PyExc_ValueError, "operation on closed %s", o->kind);
        return -1;
    }
    return 0;
}

/* Start a call on the object's fd: return the fd, or -1 with ValueError set if closed.
 * Must be paired with pybpf_leave() (GIL held for both). */
static inline int
pybpf_enter(PyBPF_FdObject *o)
{
    if (pybpf_check_open(o) < 0)
        return -1;
    o->inflight++;
    return o->fd;
}

static void pybpf_fd_release(PyBPF_FdObject *o);

static inline void
pybpf_leave(PyBPF_FdObject *o)
{
    if (--o->inflight == 0 && o->closing)
        pybpf_fd_release(o);
}

/* Initialise the base fields of a freshly allocated object. */
static void pybpf_fd_init(PyBPF_FdObject *o, int fd, int owns, const char *kind);
/* Turn a caller's fd into one we own: dup (or take it when transfer), never keeping fd 0.
 * Returns the fd or -1 with an exception set. */
static int pybpf_adopt_fd(int fd, int transfer, const char *kind);
/* Shared methods and getters; types list PYBPF_FD_METHODS / PYBPF_FD_GETSETS in their tables. */
static PyObject *pybpf_fd_close(PyObject *self, PyObject *unused);
static PyObject *pybpf_fd_fileno(PyObject *self, PyObject *unused);
static PyObject *pybpf_fd_detach(PyObject *self, PyObject *unused);
static PyObject *pybpf_fd_dup(PyObject *self, PyObject *unused);
/* Not in PYBPF_FD_METHODS: only objects bpf_obj_pin accepts (map, program, link) list it. */
static PyObject *pybpf_fd_pin(PyObject *self, PyObject *arg);
static PyObject *pybpf_fd_enter_ctx(PyObject *self, PyObject *unused);
static PyObject *pybpf_fd_exit_ctx(PyObject *self, PyObject *const *args, Py_ssize_t n);
static PyObject *pybpf_fd_get_closed(PyObject *self, void *c);
static PyObject *pybpf_fd_get_fd(PyObject *self, void *c);
static void pybpf_fd_finalize(PyObject *self);
static void pybpf_fd_dealloc(PyObject *self);
static int pybpf_fd_traverse(PyObject *self, visitproc visit, void *arg);

#define PYBPF_FD_METHODS                                                                    \
    {"close", pybpf_fd_close, METH_NOARGS,                                                  \
     PyDoc_STR("Close the descriptor (idempotent). The kernel object lives on while other " \
               "fds, pins or links hold it.")},                                             \
    {"fileno", pybpf_fd_fileno, METH_NOARGS, PyDoc_STR("Return the file descriptor.")},     \
    {"detach", pybpf_fd_detach, METH_NOARGS,                                                \
     PyDoc_STR("Give up ownership: return the fd, which the caller must close.")},          \
    {"dup", pybpf_fd_dup, METH_NOARGS,                                                      \
     PyDoc_STR("Return a new object of the same type owning a duplicate descriptor.")},    \
    {"__enter__", pybpf_fd_enter_ctx, METH_NOARGS, NULL},                                   \
    {"__exit__", (PyCFunction)(void (*)(void))pybpf_fd_exit_ctx, METH_FASTCALL, NULL}

#define PYBPF_FD_GETSETS                                                                    \
    {"closed", pybpf_fd_get_closed, NULL, PyDoc_STR("True once close() was called."), NULL}, \
    {"fd", pybpf_fd_get_fd, NULL, PyDoc_STR("The file descriptor (ValueError if closed)."), NULL}

#define PYBPF_FD_MEMBERS                                                                    \
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PyBPF_FdObject, weakreflist), READONLY, NULL}

/* ---- errors (errors.c) -------------------------------------------------------------------
 * Every failure goes through these.  err is a positive errno or a libbpf code (>= 4000).
 * op names the operation ("map lookup"); obj (may be NULL) is described by its repr.
 * All return NULL so that `return pybpf_err(...)` reads naturally. */
static PyObject *pybpf_err(pybpf_state *st, int err, const char *op, PyObject *obj);
/* Same, with an explicit class and an extra sentence appended to the message. */
static PyObject *pybpf_err_with(pybpf_state *st, PyObject *cls, int err, const char *op,
                                PyObject *obj, const char *hint);
/* Turn a libbpf return value (negative errno, or NULL pointer + errno) into a positive code. */
static inline int
pybpf_libbpf_errno(long ret)
{
    if (ret < 0)
        return (int)-ret;
    return errno ? errno : EINVAL;
}

/* ---- buffers -------------------------------------------------------------------------------*/
/* Get a contiguous read-only view of a bytes-like object of exactly `size` bytes.
 * TypeError for non-buffers, ValueError naming both sizes otherwise. */
static int pybpf_get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t size, const char *what,
                            int writable);

/* ---- info dicts (fd.c) --------------------------------------------------------------------*/
static int pybpf_dict_set(PyObject *d, const char *key, PyObject *v);  /* steals v */
#define PYBPF_SET_U64(d, key, v) pybpf_dict_set(d, key, PyLong_FromUnsignedLongLong(v))
/* Kernel object names are char arrays of cap bytes, NUL-terminated only when shorter. */
static inline PyObject *
pybpf_decode_name(const char *name, size_t cap)
{
    return PyUnicode_DecodeUTF8(name, strnlen(name, cap), "replace");
}
static PyObject *pybpf_uint_list(const void *a, Py_ssize_t n, int width);

/* ---- opening BPF objects (fd.c) ---------------------------------------------------------*/
typedef int (*pybpf_get_fd_by_id_fn)(__u32 id, const struct bpf_get_fd_by_id_opts *opts);
static int pybpf_id_arg(PyObject *arg, const char *what, uint32_t *out);
static int pybpf_fd_by_id(pybpf_state *st, pybpf_get_fd_by_id_fn get, uint32_t id,
                          uint32_t flags, const char *kind);
static int pybpf_fd_from_pin(pybpf_state *st, PyObject *path, uint32_t flags, const char *kind);
static int pybpf_fd_is(int fd, const char *inode, char *seen, size_t seen_len);
/* A type's test that fd is of its kind: 0, or -1 with the error set. */
typedef int (*pybpf_fd_check_fn)(PyTypeObject *cls, int fd);
static int pybpf_fd_from_fd_args(PyTypeObject *cls, PyObject *args, PyObject *kwds,
                                 const char *kind, pybpf_fd_check_fn check);

#endif /* PYBPF_H */
