/* The fd-ownership pattern shared by Map, Program, Link, BTF and the event readers. */

static void
pybpf_fd_init(PyBPF_FdObject *o, int fd, int owns, const char *kind)
{
    o->fd = fd;
    o->owns_fd = owns ? 1 : 0;
    o->closing = 0;
    o->inflight = 0;
    o->kind = kind;
    o->release = NULL;
    o->weakreflist = NULL;
}

static int
pybpf_adopt_fd(int fd, int transfer, const char *kind)
{
    int nfd;

    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "%s fd must be >= 0, got %d", kind, fd);
        return -1;
    }
    if (transfer && fd > 0)
        return fd;
    /* fd 0 is never kept: code that treats 0 as "unset" (ours, libbpf's, the user's) would
     * misbehave, so it is moved to >= 1 as cilium/ebpf does. */
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 1);
    if (nfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (transfer)
        close(fd);
    return nfd;
}

static void
pybpf_fd_release(PyBPF_FdObject *o)
{
    int fd = o->fd;

    if (o->release) {
        pybpf_release_fn fn = o->release;
        o->release = NULL;
        fn(o);
    }
    o->fd = -1;
    o->closing = 0;
    if (fd >= 0 && o->owns_fd)
        close(fd);  /* never retried on EINTR: Linux frees the number either way */
    o->owns_fd = 0;
}

static PyObject *
pybpf_fd_close(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;

    if (o->fd < 0 && !o->release)
        Py_RETURN_NONE;
    if (o->inflight > 0) {
        /* Another thread is inside a syscall on this fd: refuse new calls now and let the
         * last one out close it, so the number cannot be recycled under that syscall. */
        o->closing = 1;
        Py_RETURN_NONE;
    }
    pybpf_fd_release(o);
    Py_RETURN_NONE;
}

static PyObject *
pybpf_fd_fileno(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;

    if (pybpf_check_open(o) < 0)
        return NULL;
    return PyLong_FromLong(o->fd);
}

static PyObject *
pybpf_fd_get_fd(PyObject *self, void *c)
{
    return pybpf_fd_fileno(self, NULL);
}

static PyObject *
pybpf_fd_get_closed(PyObject *self, void *c)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;

    return PyBool_FromLong(pybpf_fd_closed(o));
}

static PyObject *
pybpf_fd_detach(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    int fd;

    if (pybpf_check_open(o) < 0)
        return NULL;
    fd = o->fd;
    o->owns_fd = 0;
    if (o->inflight == 0) {
        pybpf_fd_release(o);
    } else {
        o->closing = 1;  /* the fd is the caller's now; in-flight calls finish on it */
    }
    return PyLong_FromLong(fd);
}

static PyObject *
pybpf_fd_dup(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    PyObject *res;
    int fd = pybpf_enter(o);

    if (fd < 0)
        return NULL;
    /* from_fd() dups by default and reads the kernel's info again, so the copy is exact. */
    res = PyObject_CallMethod((PyObject *)Py_TYPE(self), "from_fd", "i", fd);
    pybpf_leave(o);
    return res;
}

/* pin(path) for Map, Program and Link: bpf_obj_pin works on any BPF object fd, so one
 * method serves all three; the operation is named after the object's kind. */
static PyObject *
pybpf_fd_pin(PyObject *self, PyObject *arg)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    PyObject *path;
    int fd, r;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    if ((fd = pybpf_enter(o)) < 0) {
        Py_DECREF(path);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = bpf_obj_pin(fd, PyBytes_AS_STRING(path));
    Py_END_ALLOW_THREADS
    pybpf_leave(o);
    if (r < 0) {
        char op[300];
        int err = pybpf_libbpf_errno(r);

        snprintf(op, sizeof(op), "%s pin to %.256s", o->kind, PyBytes_AS_STRING(path));
        Py_DECREF(path);
        /* The kernel answers EPERM/ENOENT/EINVAL for a path outside a bpffs mount or
         * under a missing directory, which says little on its own. */
        return pybpf_err_with(PYBPF_STATE(self), NULL, err, op, self,
                              err == EPERM || err == ENOENT || err == EINVAL
                                  ? "the path must be on a mounted bpffs (mount -t bpf bpf "
                                    "/sys/fs/bpf) and not exist yet"
                              : err == EEXIST ? "something is already pinned there"
                                              : NULL);
    }
    Py_DECREF(path);
    Py_RETURN_NONE;
}

static PyObject *
pybpf_fd_enter_ctx(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;

    if (pybpf_check_open(o) < 0)
        return NULL;
    return Py_NewRef(self);
}

/* __exit__ calls close() through the type, so subclasses that extend close() are honoured;
 * object.c's Object (not fd-based) uses it too. */
static PyObject *
pybpf_fd_exit_ctx(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
    PyObject *r = PyObject_CallMethod(self, "close", NULL);

    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static void
pybpf_fd_finalize(PyObject *self)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    PyObject *type, *value, *tb;

    if ((o->fd < 0 || !o->owns_fd) && !o->release)
        return;
    PyErr_Fetch(&type, &value, &tb);
    if (o->fd >= 0 && o->owns_fd) {
        if (PyErr_ResourceWarning(self, 1, "unclosed %s %R", o->kind, self) < 0)
            PyErr_WriteUnraisable(self);
    }
    pybpf_fd_release(o);
    PyErr_Restore(type, value, tb);
}

/* Heap types must visit their type; nothing else to visit (also used by Object and BTF). */
static int
pybpf_fd_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void
pybpf_fd_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;

    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return;  /* resurrected */
    if (PyType_IS_GC(tp))
        PyObject_GC_UnTrack(self);
    if (o->weakreflist)
        PyObject_ClearWeakRefs(self);
    if (o->fd >= 0 || o->release)
        pybpf_fd_release(o);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ---- buffers ------------------------------------------------------------------------------ */

static int
pybpf_get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t size, const char *what,
                 int writable)
{
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_CONTIG : PyBUF_CONTIG_RO) < 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError) && !PyObject_CheckBuffer(obj)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a bytes-like object, not %.100s", what,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (size >= 0 && view->len != size) {
        PyErr_Format(PyExc_ValueError, "%s must be %zd bytes, got %zd", what, size, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ---- info dicts ----------------------------------------------------------------------------
 * Map, Program and Link turn kernel info structs into dicts the same way; these keep that
 * one-liner per field. */

/* d[key] = v, stealing v; v NULL (a failed constructor) is passed through as -1. */
static int
pybpf_dict_set(PyObject *d, const char *key, PyObject *v)
{
    int r;

    if (!v)
        return -1;
    r = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return r;
}

/* A list of n unsigned ints read from an array of __u32 (width 4) or __u64 (width 8): the
 * kernel hands back id, flag and address arrays in both widths. */
static PyObject *
pybpf_uint_list(const void *a, Py_ssize_t n, int width)
{
    PyObject *l = PyList_New(n), *x;
    Py_ssize_t i;

    for (i = 0; l && i < n; i++) {
        x = PyLong_FromUnsignedLongLong(width == 8 ? ((const __u64 *)a)[i]
                                                   : ((const __u32 *)a)[i]);
        if (!x) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, x);
    }
    return l;
}

/* ---- opening BPF objects: by id, from a pin, and what an fd is ------------------------------
 * Map, Program and Link open their kernel objects the same ways; only the libbpf call and the
 * kind differ. */

/* Parse an object id (u32): ValueError, not OverflowError, for negatives and huge values. */
static int
pybpf_id_arg(PyObject *arg, const char *what, uint32_t *out)
{
    long long v;

    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s id must be an int, not %.100s", what,
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        v = -1;
    }
    if (v < 0 || v > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s id must be in 0..2**32-1", what);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Open by kernel id with get (bpf_map_get_fd_by_id_opts, bpf_prog_..., bpf_link_...: they
 * share one signature).  Returns an fd we own (>= 1), or -1 with the error set. */
static int
pybpf_fd_by_id(pybpf_state *st, pybpf_get_fd_by_id_fn get, uint32_t id, uint32_t flags,
               const char *kind)
{
    LIBBPF_OPTS(bpf_get_fd_by_id_opts, opts, .open_flags = flags);
    int fd;

    Py_BEGIN_ALLOW_THREADS
    fd = get(id, &opts);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        char op[64], hint[64];
        int err = pybpf_libbpf_errno(fd);

        snprintf(op, sizeof(op), "open %s id %u", kind, id);
        snprintf(hint, sizeof(hint), "no %s has that id", kind);
        pybpf_err_with(st, NULL, err, op, NULL, err == ENOENT ? hint : NULL);
        return -1;
    }
    return pybpf_adopt_fd(fd, 1, kind);
}

/* Open the object pinned at path (str, bytes or os.PathLike); flags are BPF_F_RDONLY /
 * BPF_F_WRONLY.  bpf_obj_get returns whatever kind is pinned there: the caller checks.
 * Returns an fd we own (>= 1), or -1 with the error set. */
static int
pybpf_fd_from_pin(pybpf_state *st, PyObject *pathobj, uint32_t flags, const char *kind)
{
    LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = flags);
    PyObject *path;
    int fd;

    if (!PyUnicode_FSConverter(pathobj, &path))
        return -1;
    Py_BEGIN_ALLOW_THREADS
    fd = bpf_obj_get_opts(PyBytes_AS_STRING(path), &opts);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        char op[300];
        int err = pybpf_libbpf_errno(fd);

        snprintf(op, sizeof(op), "open pinned %s %.256s", kind, PyBytes_AS_STRING(path));
        Py_DECREF(path);
        pybpf_err_with(st, NULL, err, op, NULL,
                       err == ENOENT ? "no such pin (is bpffs mounted there?)" : NULL);
        return -1;
    }
    Py_DECREF(path);
    return pybpf_adopt_fd(fd, 1, kind);
}

/* from_fd(fd, transfer=False) of Map, Program and Link: parse, let check (may be NULL) refuse
 * an fd of another kind before we take it, then adopt it (dup, or take it when transfer).
 * Returns an fd we own, or -1 with the error set. */
static int
pybpf_fd_from_fd_args(PyTypeObject *cls, PyObject *args, PyObject *kwds, const char *kind,
                      pybpf_fd_check_fn check)
{
    static char *kwlist[] = {"fd", "transfer", NULL};
    int fd, transfer = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|p:from_fd", kwlist, &fd, &transfer))
        return -1;
    if (fd >= 0 && check && check(cls, fd) < 0)
        return -1;
    return pybpf_adopt_fd(fd, transfer, kind);  /* ValueError for fd < 0 */
}

/* Is fd the BPF object anon inode `inode` ("bpf-prog", "bpf-map", "bpf_link")?  Looks at
 * /proc/self/fd: BPF_OBJ_GET_INFO_BY_FD would happily describe a map fd with a program info
 * struct, so this is the only reliable test.  The kernel spells these names with '-' or '_',
 * so both count as the same.  Returns 1 yes; 0 no, with the fd's link target in seen (if
 * given); -1 if fd is not open.  Without /proc it cannot tell and returns 1.  Keeps the GIL:
 * a readlink on procfs does not block. */
static int
pybpf_fd_is(int fd, const char *inode, char *seen, size_t seen_len)
{
    char path[64], target[128];
    const char *a, *b;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        if (errno == ENOENT && access("/proc/self/fd", F_OK) != 0)
            return 1;
        return errno == EBADF || errno == ENOENT ? -1 : 1;
    }
    target[n] = '\0';
    if (seen)
        snprintf(seen, seen_len, "%s", target);
    if (strncmp(target, "anon_inode:", 11) != 0)
        return 0;
    for (a = target + 11, b = inode; *a && *b; a++, b++)
        if (*a != *b && !(strchr("-_", *a) && strchr("-_", *b)))
            return 0;
    return *a == *b;
}

