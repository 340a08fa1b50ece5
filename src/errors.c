/* The error helper family: errno (or libbpf code) + operation + object -> Python exception. */

static void
pybpf_reason(int err, char *buf, size_t len)
{
    /* libbpf_strerror knows both errno values and libbpf's own codes (>= 4000). */
    if (libbpf_strerror(err, buf, len) < 0 || !buf[0])
        snprintf(buf, len, "%s", strerror(err));
}

static PyObject *
pybpf_raise(PyObject *cls, int err, const char *op, PyObject *obj, const char *hint)
{
    char reason[256];
    PyObject *desc = NULL, *msg, *exc, *opstr;

    pybpf_reason(err, reason, sizeof(reason));
    if (obj) {
        desc = PyObject_Repr(obj);
        if (!desc)
            return NULL;
    }
    if (desc && hint)
        msg = PyUnicode_FromFormat("%s on %U: %s (%s)", op, desc, reason, hint);
    else if (desc)
        msg = PyUnicode_FromFormat("%s on %U: %s", op, desc, reason);
    else if (hint)
        msg = PyUnicode_FromFormat("%s: %s (%s)", op, reason, hint);
    else
        msg = PyUnicode_FromFormat("%s: %s", op, reason);
    Py_XDECREF(desc);
    if (!msg)
        return NULL;
    exc = PyObject_CallFunction(cls, "iO", err, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    opstr = PyUnicode_FromString(op);
    if (!opstr || PyObject_SetAttrString(exc, "operation", opstr) < 0) {
        Py_XDECREF(opstr);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(opstr);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
pybpf_err_with(pybpf_state *st, PyObject *cls, int err, const char *op, PyObject *obj,
               const char *hint)
{
    if (!cls) {
        if (err == EPERM || err == EACCES) {
            cls = st->PermissionError;
            if (!hint)
                hint = "needs CAP_BPF (or CAP_SYS_ADMIN), plus CAP_PERFMON or CAP_NET_ADMIN "
                       "for some program types; check also kernel.unprivileged_bpf_disabled "
                       "and lockdown";
        } else if (err == ENOTSUPP || err == EOPNOTSUPP) {
            cls = st->NotSupportedError;
            if (!hint)
                hint = "the running kernel does not support this";
        } else {
            cls = st->BPFError;
        }
    }
    return pybpf_raise(cls, err, op, obj, hint);
}

static PyObject *
pybpf_err(pybpf_state *st, int err, const char *op, PyObject *obj)
{
    return pybpf_err_with(st, NULL, err, op, obj, NULL);
}

/* Create the exception classes and store them in the state and the module. */
static int
pybpf_errors_init(PyObject *m, pybpf_state *st)
{
    /* bases: NULL for Exception, one class, or (BPFError, other) packed by NEWEXC2 */
#define NEWEXC(field, name, bases, doc)                                                     \
    do {                                                                                   \
        st->field = PyErr_NewExceptionWithDoc("bpf." name, doc, bases, NULL);              \
        if (!st->field || PyModule_AddObjectRef(m, name, st->field) < 0)                   \
            goto fail;                                                                     \
    } while (0)
    /* a BPFError that is also one of Python's own classes, so both except clauses work */
#define NEWEXC2(field, name, other, doc)                                                    \
    do {                                                                                   \
        if (!(bases = PyTuple_Pack(2, st->BPFError, other)))                               \
            goto fail;                                                                     \
        NEWEXC(field, name, bases, doc);                                                   \
        Py_CLEAR(bases);                                                                   \
    } while (0)
    PyObject *bases = NULL;

    NEWEXC(BPFError, "BPFError", PyExc_OSError,
           "A bpf() or libbpf operation failed. Carries errno, and .operation names the call.");
    NEWEXC2(KeyNotFoundError, "KeyNotFoundError", PyExc_KeyError,
            "The key is not in the map (ENOENT). Also a KeyError.");
    NEWEXC2(KeyExistsError, "KeyExistsError", PyExc_FileExistsError,
            "The key already exists and the update asked for NOEXIST (EEXIST).");
    NEWEXC(VerifierError, "VerifierError", st->BPFError,
           "The kernel's verifier rejected a program. .log holds its log as a list of lines.");
    NEWEXC(NotSupportedError, "NotSupportedError", st->BPFError,
           "The running kernel lacks the feature (ENOTSUPP, EOPNOTSUPP, or probed absent).");
    NEWEXC2(PermissionError, "BPFPermissionError", PyExc_PermissionError,
            "EPERM/EACCES from bpf(): a capability is missing or the object forbids it.");
    return 0;
fail:
    Py_XDECREF(bases);
    return -1;
#undef NEWEXC2
#undef NEWEXC
}
