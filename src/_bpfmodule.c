/* _bpf: the C layer of the `bpf` package.
 *
 * One translation unit: the per-concern files are #included below so that every helper stays
 * static and the shared object exports only PyInit__bpf (the vendored libbpf, libelf and zlib
 * are hidden at link time as well).  The C layer owns fds and calls libbpf; policy, defaults
 * and conversions live in the Python package.
 */
#include "pybpf.h"

#include <sys/utsname.h>

#include "errors.c"
#include "fd.c"
#include "map.c"
#include "program.c"
#include "object.c"
#include "link.c"
#include "pybtf.c"  /* named apart from libbpf's own btf.c */
#include "ringbuf.c"
#include "perfbuf.c"
#include "probes.c"

/* ---- module state ------------------------------------------------------------------------ */

static pybpf_state *
pybpf_state_from_module(PyObject *m)
{
    return (pybpf_state *)PyModule_GetState(m);
}

static pybpf_state *
pybpf_state_from_type(PyTypeObject *tp)
{
    /* PyType_GetModuleByDef is 3.11+; walk the MRO so subclasses defined in Python find the
     * module of the base type we created. */
    PyObject *mro = tp->tp_mro;
    Py_ssize_t i, n;

    if (mro) {
        n = PyTuple_GET_SIZE(mro);
        for (i = 0; i < n; i++) {
            PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
            if (PyType_HasFeature(t, Py_TPFLAGS_HEAPTYPE)) {
                PyObject *mod = PyType_GetModule(t);
                if (mod && PyModule_GetDef(mod) == &pybpf_module_def)
                    return pybpf_state_from_module(mod);
                PyErr_Clear();
            }
        }
    }
    Py_FatalError("bpf._bpf: type without module state");
    return NULL;
}

/* The end of every concern's init: create its heap type from spec, keep it in its state
 * field, add it to the module under its short name ("bpf._bpf.Map" -> Map), and add the
 * concern's module functions (functions may be NULL). */
static int
pybpf_add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **slot, PyMethodDef *functions)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (!*slot || PyModule_AddType(m, *slot) < 0)
        return -1;
    return functions ? PyModule_AddFunctions(m, functions) : 0;
}

/* ---- libbpf's print callback -> logging ----------------------------------------------------
 * libbpf's print hook is process-global, so its target is too: a Python callable set by
 * bpf/_log.py.  libbpf may call it from a thread that released the GIL (during a load), so
 * the GIL is taken here. */

static PyObject *pybpf_print_target = NULL; /* strong ref, or NULL */

static int
pybpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char buf[2048];
    PyGILState_STATE g;
    PyObject *r;
    int n;

    if (!pybpf_print_target || !Py_IsInitialized())
        return 0;
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n < 0)
        return 0;
    g = PyGILState_Ensure();
    if (pybpf_print_target) {
        /* "replace": messages quote names from the ELF file, which may not be UTF-8 */
        PyObject *text = PyUnicode_DecodeUTF8(buf, strnlen(buf, sizeof(buf)), "replace");
        r = text ? PyObject_CallFunction(pybpf_print_target, "iN", (int)level, text) : NULL;
        if (!r)
            PyErr_WriteUnraisable(pybpf_print_target);
        Py_XDECREF(r);
    }
    PyGILState_Release(g);
    return n;
}

static PyObject *
pybpf_set_print_callback(PyObject *mod, PyObject *cb)
{
    if (cb != Py_None && !PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "callback must be callable or None");
    Py_XSETREF(pybpf_print_target, cb == Py_None ? NULL : Py_NewRef(cb));
    Py_RETURN_NONE;
}

/* ---- module functions ---------------------------------------------------------------------- */

static PyObject *
pybpf_libbpf_version(PyObject *mod, PyObject *unused)
{
    return Py_BuildValue("(II)", libbpf_major_version(), libbpf_minor_version());
}

static PyObject *
pybpf_possible_cpus(PyObject *mod, PyObject *unused)
{
    int n = libbpf_num_possible_cpus();

    if (n < 0)
        return pybpf_err(pybpf_state_from_module(mod), -n, "possible_cpus", NULL);
    return PyLong_FromLong(n);
}

static PyObject *
pybpf_kernel_release(PyObject *mod, PyObject *unused)
{
    struct utsname u;

    if (uname(&u) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_DecodeFSDefault(u.release);
}

static PyMethodDef pybpf_functions[] = {
    {"libbpf_version", pybpf_libbpf_version, METH_NOARGS,
     PyDoc_STR("Return (major, minor) of the libbpf linked into this module.")},
    {"possible_cpus", pybpf_possible_cpus, METH_NOARGS,
     PyDoc_STR("Return the number of possible CPUs, the length of per-CPU values.")},
    {"kernel_release", pybpf_kernel_release, METH_NOARGS,
     PyDoc_STR("Return the running kernel's release string (uname -r).")},
    {"_set_print_callback", pybpf_set_print_callback, METH_O,
     PyDoc_STR("Route libbpf's messages to callback(level, text), or None to drop them.")},
    {NULL, NULL, 0, NULL},
};

/* ---- module definition --------------------------------------------------------------------- */

static int
pybpf_exec(PyObject *m)
{
    pybpf_state *st = pybpf_state_from_module(m);

    if (pybpf_errors_init(m, st) < 0)
        return -1;
    if (pybpf_map_init(m, st) < 0 || pybpf_program_init(m, st) < 0 ||
        pybpf_object_init(m, st) < 0 || pybpf_link_init(m, st) < 0 ||
        pybpf_btf_init(m, st) < 0 || pybpf_ringbuf_init(m, st) < 0 ||
        pybpf_perfbuf_init(m, st) < 0 || pybpf_probes_init(m, st) < 0)
        return -1;
    /* libbpf 1.x is always in strict mode; we only install the print hook. */
    libbpf_set_print(pybpf_libbpf_print);
    return 0;
}

#define PYBPF_STATE_FIELDS(X)                                                               \
    X(BPFError) X(KeyNotFoundError) X(KeyExistsError) X(VerifierError) X(NotSupportedError)  \
    X(PermissionError) X(Map_Type) X(Program_Type) X(Object_Type) X(Link_Type) X(BTF_Type)   \
    X(RingBuffer_Type) X(PerfBuffer_Type) X(UserRingBuffer_Type)

static int
pybpf_traverse(PyObject *m, visitproc visit, void *arg)
{
    pybpf_state *st = pybpf_state_from_module(m);
#define VISIT(f) Py_VISIT(st->f);
    PYBPF_STATE_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
pybpf_clear(PyObject *m)
{
    pybpf_state *st = pybpf_state_from_module(m);
#define CLEAR(f) Py_CLEAR(st->f);
    PYBPF_STATE_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
pybpf_free(void *m)
{
    pybpf_clear((PyObject *)m);
}

static PyModuleDef_Slot pybpf_slots[] = {
    {Py_mod_exec, pybpf_exec},
    {0, NULL},
};

static struct PyModuleDef pybpf_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bpf._bpf",
    .m_doc = "C layer of the bpf package: fd-owning kernel objects and calls into libbpf.",
    .m_size = sizeof(pybpf_state),
    .m_methods = pybpf_functions,
    .m_slots = pybpf_slots,
    .m_traverse = pybpf_traverse,
    .m_clear = pybpf_clear,
    .m_free = pybpf_free,
};

PyMODINIT_FUNC
PyInit__bpf(void)
{
    return PyModuleDef_Init(&pybpf_module_def);
}
