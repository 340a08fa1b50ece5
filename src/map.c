/* Map: the fd-owning map type and its raw operations.
 *
 * Everything here works on bytes: keys and values come in through the buffer protocol and go
 * out as new bytes objects or into the caller's writable buffer.  Codecs, iteration policy and
 * the dict-like conveniences that need no speed live in bpf/maps.py (class Map(_bpf.Map)).
 *
 * Hot paths (lookup, update, delete, next_key, m[k], k in m) take no keywords, accept exact
 * bytes without going through the buffer protocol, allocate the result before the syscall so
 * the kernel writes straight into it, and release the GIL only around the syscall.
 */

typedef struct {
    PyBPF_FdObject base;
    /* From the kernel's bpf_map_info when the object was made; these never change for the
     * life of a kernel map, so they are cached rather than re-read. */
    uint32_t map_type;
    uint32_t id;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t max_entries;
    uint32_t map_flags;
    uint64_t map_extra;
    /* Bytes one raw lookup returns: round_up(value_size, 8) * possible CPUs for per-CPU
     * types, value_size otherwise. */
    Py_ssize_t raw_value_size;
    char name[BPF_OBJ_NAME_LEN];
} PyBPF_MapObject;

#define MAP(o) ((PyBPF_MapObject *)(o))

static const char *const pybpf_map_type_names[] = {
    "UNSPEC", "HASH", "ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "PERCPU_HASH",
    "PERCPU_ARRAY", "STACK_TRACE", "CGROUP_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH", "LPM_TRIE",
    "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP", "SOCKMAP", "CPUMAP", "XSKMAP", "SOCKHASH",
    "CGROUP_STORAGE", "REUSEPORT_SOCKARRAY", "PERCPU_CGROUP_STORAGE", "QUEUE", "STACK",
    "SK_STORAGE", "DEVMAP_HASH", "STRUCT_OPS", "RINGBUF", "INODE_STORAGE", "TASK_STORAGE",
    "BLOOM_FILTER", "USER_RINGBUF", "CGRP_STORAGE", "ARENA", "INSN_ARRAY",
};

static const char *
pybpf_map_type_name(uint32_t t)
{
    if (t < sizeof(pybpf_map_type_names) / sizeof(pybpf_map_type_names[0]))
        return pybpf_map_type_names[t];
    return "UNKNOWN";
}

static int
pybpf_map_is_percpu(uint32_t t)
{
    return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
           t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/* ---- errors --------------------------------------------------------------------------------
 * Map operations explain the errno in terms of maps: which map, what a full map looks like,
 * what a read-only fd or a frozen map does to updates.  `extra` (may be NULL) is appended. */

static PyObject *
pybpf_map_err(PyObject *self, int err, const char *op, const char *extra)
{
    pybpf_state *st = PYBPF_STATE(self);
    PyObject *cls = NULL;
    const char *why = NULL;
    char hint[512];

    switch (err) {
    case ENOENT:
        cls = st->KeyNotFoundError;
        break;
    case EEXIST:
        cls = st->KeyExistsError;
        why = "the key exists and NOEXIST was asked";
        break;
    case E2BIG:
        why = "the map is full (max_entries reached), or for an array the index is >= "
              "max_entries";
        break;
    case EPERM:
    case EACCES:
        cls = st->PermissionError;
        why = "the map is frozen or this fd only allows the other direction (BPF_F_RDONLY / "
              "BPF_F_WRONLY), or the process lacks CAP_BPF (or CAP_SYS_ADMIN)";
        break;
    case ENOTSUPP:
    case EOPNOTSUPP:
        cls = st->NotSupportedError;
        why = "this map type does not support the operation from user space";
        break;
    case ENOSPC:
        why = "the batch is smaller than one hash bucket: pass larger buffers";
        break;
    case EBUSY:
        why = "the map is busy (an update of the same element is in progress)";
        break;
    }
    if (why && extra)
        snprintf(hint, sizeof(hint), "%s; %s", why, extra);
    else if (why || extra)
        snprintf(hint, sizeof(hint), "%s", why ? why : extra);
    return pybpf_err_with(st, cls, err, op, self, (why || extra) ? hint : NULL);
}

/* Attach .count (elements that succeeded) to the exception being raised. */
static PyObject *
pybpf_map_batch_err(PyObject *self, int err, const char *op, uint32_t done, Py_ssize_t total)
{
    char extra[128];
    PyObject *type, *value, *tb, *cnt;

    snprintf(extra, sizeof(extra), "%u of %zd elements succeeded", done, total);
    pybpf_map_err(self, err, op, extra);
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value) {
        cnt = PyLong_FromUnsignedLong(done);
        if (!cnt || PyObject_SetAttrString(value, "count", cnt) < 0)
            PyErr_Clear();
        Py_XDECREF(cnt);
    }
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* ---- keys and values ---------------------------------------------------------------------- */

/* A borrowed pointer to a key or value: exact bytes are used in place (no buffer export);
 * anything else goes through the buffer protocol and must be released. */
typedef struct {
    const void *ptr;
    Py_buffer view; /* view.obj != NULL when it must be released */
} pybpf_arg;

static inline void
pybpf_arg_release(pybpf_arg *a)
{
    if (a->view.obj)
        PyBuffer_Release(&a->view);
}

static inline int
pybpf_arg_get(PyObject *obj, pybpf_arg *a, Py_ssize_t size, const char *what)
{
    a->view.obj = NULL;
    if (size == 0 && obj == Py_None) {
        /* Keyless maps (QUEUE, STACK, BLOOM_FILTER) take a NULL key. */
        a->ptr = NULL;
        return 0;
    }
    if (PyBytes_CheckExact(obj)) {
        if (PyBytes_GET_SIZE(obj) != size) {
            PyErr_Format(PyExc_ValueError, "%s must be %zd bytes, got %zd", what, size,
                         PyBytes_GET_SIZE(obj));
            return -1;
        }
        /* The kernel refuses a non-NULL key pointer for keyless maps. */
        a->ptr = size ? PyBytes_AS_STRING(obj) : NULL;
        return 0;
    }
    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s must be a bytes-like object of %zd bytes, not None",
                     what, size);
        return -1;
    }
    if (pybpf_get_buffer(obj, &a->view, size, what, 0) < 0) {
        a->view.obj = NULL;
        return -1;
    }
    a->ptr = size ? a->view.buf : NULL;
    return 0;
}

static inline int
pybpf_map_enter(PyObject *self)
{
    return pybpf_enter((PyBPF_FdObject *)self);
}

static inline void
pybpf_map_leave(PyObject *self)
{
    pybpf_leave((PyBPF_FdObject *)self);
}

/* ---- construction ------------------------------------------------------------------------- */

/* Fill the cached attributes from the kernel's map info. */
static int
pybpf_map_read_info(PyObject *self, int fd, struct bpf_map_info *out)
{
    PyBPF_MapObject *m = MAP(self);
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    int r, ncpu;

    memset(&info, 0, sizeof(info));
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map_get_info_by_fd(fd, &info, &len);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        pybpf_err_with(PYBPF_STATE(self), NULL, -r, "read map info", NULL,
                       -r == EINVAL ? "the fd does not refer to a BPF map" : NULL);
        return -1;
    }
    m->map_type = info.type;
    m->id = info.id;
    m->key_size = info.key_size;
    m->value_size = info.value_size;
    m->max_entries = info.max_entries;
    m->map_flags = info.map_flags;
    m->map_extra = info.map_extra;
    memcpy(m->name, info.name, sizeof(m->name));
    m->name[sizeof(m->name) - 1] = 0;
    if (pybpf_map_is_percpu(info.type)) {
        ncpu = libbpf_num_possible_cpus();
        if (ncpu < 0) {
            pybpf_err(PYBPF_STATE(self), -ncpu, "possible_cpus", NULL);
            return -1;
        }
        m->raw_value_size = (Py_ssize_t)(((info.value_size + 7) / 8) * 8) * ncpu;
    } else {
        m->raw_value_size = info.value_size;
    }
    if (out)
        *out = info;
    return 0;
}

/* Make an instance of cls around fd, which we own from here on (closed on failure). */
static PyObject *
pybpf_map_wrap(PyTypeObject *cls, int fd)
{
    PyObject *self = cls->tp_alloc(cls, 0);

    if (!self) {
        close(fd);
        return NULL;
    }
    pybpf_fd_init((PyBPF_FdObject *)self, fd, 1, "map");
    if (pybpf_map_read_info(self, fd, NULL) < 0) {
        /* Close it here so that dealloc has nothing owned to warn about. */
        pybpf_fd_release((PyBPF_FdObject *)self);
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* If obj is one of our fd-owning objects (built on the fd base of fd.c, whatever its type),
 * return it so that the caller can hold a call on it (it then cannot be closed under a
 * syscall that uses its fd); else NULL.  Types are recognised by their deallocator, as not
 * every type of this module is laid out on PyBPF_FdObject. */
static PyBPF_FdObject *
pybpf_map_fdobj(pybpf_state *st, PyObject *obj)
{
    PyObject *mro = Py_TYPE(obj)->tp_mro;
    Py_ssize_t i;

    if (!mro)
        return NULL;
    for (i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (t->tp_dealloc == pybpf_fd_dealloc)
            return (PyBPF_FdObject *)obj;
    }
    return NULL;
}

/* Resolve an fd argument (None -> -1, an int, one of our objects, or anything with fileno()).
 * When it is one of ours, *held is set and pybpf_enter() was called on it. */
static int
pybpf_map_fd_arg(pybpf_state *st, PyObject *obj, PyBPF_FdObject **held)
{
    PyBPF_FdObject *o;
    int fd;

    *held = NULL;
    if (!obj || obj == Py_None)
        return -1;
    o = pybpf_map_fdobj(st, obj);
    if (o) {
        fd = pybpf_enter(o);
        if (fd < 0)
            return -2;
        *held = o;
        return fd;
    }
    fd = PyObject_AsFileDescriptor(obj);
    return fd < 0 ? -2 : fd;
}

static PyObject *
Map_create(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"map_type", "key_size", "value_size", "max_entries", "flags",
                             "name", "inner_map", "numa_node", "map_extra", "btf",
                             "btf_key_type_id", "btf_value_type_id",
                             "btf_vmlinux_value_type_id", "value_type_btf_obj",
                             "ifindex", "token", NULL};
    pybpf_state *st = pybpf_state_from_type((PyTypeObject *)cls);
    unsigned int map_type, key_size = 0, value_size = 0, max_entries = 0, flags = 0;
    unsigned int bkey = 0, bval = 0, bvmlinux = 0, ifindex = 0;
    int numa_node = -1;
    unsigned long long map_extra = 0;
    PyObject *name = Py_None, *inner = Py_None, *btf = Py_None, *vbtf = Py_None,
             *token = Py_None;
    PyBPF_FdObject *held[4] = {NULL, NULL, NULL, NULL};
    int inner_fd, btf_fd, vbtf_fd, token_fd, fd, i;
    const char *cname = NULL;
    LIBBPF_OPTS(bpf_map_create_opts, opts);
    PyObject *res = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "I|IIIIO$OiKOIIIOIO:create", kwlist,
                                     &map_type, &key_size, &value_size, &max_entries, &flags,
                                     &name, &inner, &numa_node, &map_extra, &btf, &bkey, &bval,
                                     &bvmlinux, &vbtf, &ifindex, &token))
        return NULL;
    if (name != Py_None) {
        if (!PyUnicode_Check(name))
            return PyErr_Format(PyExc_TypeError, "name must be a str or None");
        cname = PyUnicode_AsUTF8(name);
        if (!cname)
            return NULL;
        if (strlen(cname) >= BPF_OBJ_NAME_LEN)
            return PyErr_Format(PyExc_ValueError,
                                "map name %R is longer than %d characters", name,
                                BPF_OBJ_NAME_LEN - 1);
    }
    inner_fd = pybpf_map_fd_arg(st, inner, &held[0]);
    btf_fd = inner_fd == -2 ? -2 : pybpf_map_fd_arg(st, btf, &held[1]);
    vbtf_fd = btf_fd == -2 ? -2 : pybpf_map_fd_arg(st, vbtf, &held[2]);
    token_fd = vbtf_fd == -2 ? -2 : pybpf_map_fd_arg(st, token, &held[3]);
    if (token_fd == -2)
        goto out;
    opts.map_flags = flags;
    opts.map_extra = map_extra;
    if (inner_fd >= 0)
        opts.inner_map_fd = inner_fd;
    if (btf_fd >= 0) {
        opts.btf_fd = btf_fd;
        opts.btf_key_type_id = bkey;
        opts.btf_value_type_id = bval;
        opts.btf_vmlinux_value_type_id = bvmlinux;
    }
    if (vbtf_fd >= 0) {
        opts.value_type_btf_obj_fd = vbtf_fd;
        opts.map_flags |= BPF_F_VTYPE_BTF_OBJ_FD;
        opts.btf_vmlinux_value_type_id = bvmlinux;
    }
    if (token_fd >= 0) {
        opts.token_fd = token_fd;
        opts.map_flags |= BPF_F_TOKEN_FD;
    }
    if (numa_node >= 0) {
        opts.numa_node = (unsigned)numa_node;
        opts.map_flags |= BPF_F_NUMA_NODE;
    }
    opts.map_ifindex = ifindex;
    Py_BEGIN_ALLOW_THREADS
    fd = bpf_map_create((enum bpf_map_type)map_type, cname, key_size, value_size, max_entries,
                        &opts);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        char hint[160];
        snprintf(hint, sizeof(hint),
                 "%s map with key_size=%u value_size=%u max_entries=%u flags=%#x",
                 pybpf_map_type_name(map_type), key_size, value_size, max_entries, flags);
        pybpf_err_with(st, NULL, -fd, "map create", NULL, hint);
        goto out;
    }
    if (fd == 0) {
        /* Never keep fd 0 (see pybpf_adopt_fd). */
        fd = pybpf_adopt_fd(0, 1, "map");
        if (fd < 0)
            goto out;
    }
    res = pybpf_map_wrap((PyTypeObject *)cls, fd);
out:
    for (i = 0; i < 4; i++)
        if (held[i])
            pybpf_leave(held[i]);
    return res;
}

static PyObject *
Map_from_fd(PyObject *cls, PyObject *args, PyObject *kwds)
{
    int fd = pybpf_fd_from_fd_args((PyTypeObject *)cls, args, kwds, "map", NULL);

    if (fd < 0)
        return NULL;
    return pybpf_map_wrap((PyTypeObject *)cls, fd);
}

static PyObject *
Map_from_pin(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "flags", NULL};
    PyObject *path;
    unsigned int flags = 0;
    int fd;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|I:from_pin", kwlist, &path, &flags))
        return NULL;
    fd = pybpf_fd_from_pin(pybpf_state_from_type((PyTypeObject *)cls), path, flags, "map");
    if (fd < 0)
        return NULL;
    return pybpf_map_wrap((PyTypeObject *)cls, fd);
}

static PyObject *
Map_from_id(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"id", "flags", NULL};
    unsigned int id, flags = 0;
    int fd;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "I|I:from_id", kwlist, &id, &flags))
        return NULL;
    fd = pybpf_fd_by_id(pybpf_state_from_type((PyTypeObject *)cls), bpf_map_get_fd_by_id_opts,
                        id, flags, "map");
    if (fd < 0)
        return NULL;
    return pybpf_map_wrap((PyTypeObject *)cls, fd);
}

static PyObject *
Map_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    return PyErr_Format(PyExc_TypeError,
                        "%s cannot be instantiated directly: use create(), from_fd(), "
                        "from_pin() or from_id()", tp->tp_name);
}

/* ---- element operations ------------------------------------------------------------------ */

static int
pybpf_flags_arg(PyObject *obj, unsigned long long *flags)
{
    *flags = PyLong_AsUnsignedLongLong(obj);
    if (*flags == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* Look up key into a new bytes object; None when absent (NULL with an error otherwise).
 * lookup and lookup_and_delete differ only in the libbpf call (and its op name), so `delete`
 * chooses it and the key/out/enter/leave/error handling stays in one place. */
static PyObject *
pybpf_map_lookup(PyObject *self, PyObject *key, unsigned long long flags, int raise_missing,
                 int delete)
{
    const char *op = delete ? "map lookup_and_delete" : "map lookup";
    PyBPF_MapObject *m = MAP(self);
    pybpf_arg k;
    PyObject *out;
    int fd, r;

    if (pybpf_arg_get(key, &k, m->key_size, "key") < 0)
        return NULL;
    out = PyBytes_FromStringAndSize(NULL, m->raw_value_size);
    if (!out) {
        pybpf_arg_release(&k);
        return NULL;
    }
    fd = pybpf_map_enter(self);
    if (fd < 0) {
        pybpf_arg_release(&k);
        Py_DECREF(out);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (delete)
        r = flags ? bpf_map_lookup_and_delete_elem_flags(fd, k.ptr, PyBytes_AS_STRING(out),
                                                         flags)
                  : bpf_map_lookup_and_delete_elem(fd, k.ptr, PyBytes_AS_STRING(out));
    else
        r = flags ? bpf_map_lookup_elem_flags(fd, k.ptr, PyBytes_AS_STRING(out), flags)
                  : bpf_map_lookup_elem(fd, k.ptr, PyBytes_AS_STRING(out));
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    pybpf_arg_release(&k);
    if (r < 0) {
        Py_DECREF(out);
        if (r == -ENOENT && !raise_missing)
            Py_RETURN_NONE; /* absent key, or an empty QUEUE/STACK */
        return pybpf_map_err(self, -r, op, NULL);
    }
    return out;
}

static PyObject *
Map_lookup(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long long flags = 0;

    if (nargs < 1 || nargs > 2)
        return PyErr_Format(PyExc_TypeError, "lookup(key, flags=0) takes 1 or 2 arguments");
    if (nargs == 2 && pybpf_flags_arg(args[1], &flags) < 0)
        return NULL;
    return pybpf_map_lookup(self, args[0], flags, 0, 0);
}

static PyObject *
Map_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *r;

    if (nargs < 1 || nargs > 2)
        return PyErr_Format(PyExc_TypeError, "get(key, default=None) takes 1 or 2 arguments");
    r = pybpf_map_lookup(self, args[0], 0, 0, 0);
    if (r == Py_None && nargs == 2) {
        Py_DECREF(r);
        return Py_NewRef(args[1]);
    }
    return r;
}

static PyObject *
Map_subscript(PyObject *self, PyObject *key)
{
    return pybpf_map_lookup(self, key, 0, 1, 0);
}

static PyObject *
Map_lookup_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyBPF_MapObject *m = MAP(self);
    unsigned long long flags = 0;
    pybpf_arg k;
    Py_buffer out;
    int fd, r;

    if (nargs < 2 || nargs > 3)
        return PyErr_Format(PyExc_TypeError,
                            "lookup_into(key, out, flags=0) takes 2 or 3 arguments");
    if (nargs == 3 && pybpf_flags_arg(args[2], &flags) < 0)
        return NULL;
    if (pybpf_arg_get(args[0], &k, m->key_size, "key") < 0)
        return NULL;
    if (pybpf_get_buffer(args[1], &out, -1, "out", 1) < 0) {
        pybpf_arg_release(&k);
        return NULL;
    }
    if (out.len < m->raw_value_size) {
        PyErr_Format(PyExc_ValueError, "out must be at least %zd bytes, got %zd%s",
                     m->raw_value_size, out.len,
                     pybpf_map_is_percpu(m->map_type)
                         ? " (per-CPU values are round_up(value_size, 8) * possible_cpus())"
                         : "");
        goto fail;
    }
    fd = pybpf_map_enter(self);
    if (fd < 0)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    r = flags ? bpf_map_lookup_elem_flags(fd, k.ptr, out.buf, flags)
              : bpf_map_lookup_elem(fd, k.ptr, out.buf);
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    PyBuffer_Release(&out);
    pybpf_arg_release(&k);
    if (r < 0) {
        if (r == -ENOENT)
            Py_RETURN_FALSE;
        return pybpf_map_err(self, -r, "map lookup", NULL);
    }
    Py_RETURN_TRUE;
fail:
    PyBuffer_Release(&out);
    pybpf_arg_release(&k);
    return NULL;
}

static int
pybpf_map_update(PyObject *self, PyObject *key, PyObject *value, unsigned long long flags)
{
    PyBPF_MapObject *m = MAP(self);
    pybpf_arg k, v;
    int fd, r;

    if (pybpf_arg_get(key, &k, m->key_size, "key") < 0)
        return -1;
    if (pybpf_arg_get(value, &v, m->raw_value_size,
                      pybpf_map_is_percpu(m->map_type)
                          ? "value (round_up(value_size, 8) * possible_cpus())"
                          : "value") < 0) {
        pybpf_arg_release(&k);
        return -1;
    }
    fd = pybpf_map_enter(self);
    if (fd < 0) {
        pybpf_arg_release(&k);
        pybpf_arg_release(&v);
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map_update_elem(fd, k.ptr, v.ptr, flags);
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    pybpf_arg_release(&k);
    pybpf_arg_release(&v);
    if (r < 0) {
        pybpf_map_err(self, -r, "map update", NULL);
        return -1;
    }
    return 0;
}

static PyObject *
Map_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    unsigned long long flags = 0;
    PyObject *fl = NULL;

    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        if (PyTuple_GET_SIZE(kwnames) != 1 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "flags") != 0 ||
            nargs != 2)
            return PyErr_Format(PyExc_TypeError,
                                "update(key, value, flags=0): bad keyword arguments");
        fl = args[2];
    } else if (nargs == 3) {
        fl = args[2];
    } else if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "update(key, value, flags=0) takes 2 or 3 "
                                             "arguments");
    }
    if (fl && pybpf_flags_arg(fl, &flags) < 0)
        return NULL;
    if (pybpf_map_update(self, args[0], args[1], flags) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* 1 deleted, 0 absent, -1 error. */
static int
pybpf_map_delete(PyObject *self, PyObject *key, int raise_missing)
{
    PyBPF_MapObject *m = MAP(self);
    pybpf_arg k;
    int fd, r;

    if (pybpf_arg_get(key, &k, m->key_size, "key") < 0)
        return -1;
    fd = pybpf_map_enter(self);
    if (fd < 0) {
        pybpf_arg_release(&k);
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map_delete_elem(fd, k.ptr);
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    pybpf_arg_release(&k);
    if (r < 0) {
        if (r == -ENOENT && !raise_missing)
            return 0;
        pybpf_map_err(self, -r, "map delete", NULL);
        return -1;
    }
    return 1;
}

static PyObject *
Map_delete(PyObject *self, PyObject *key)
{
    int r = pybpf_map_delete(self, key, 0);

    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static int
Map_ass_subscript(PyObject *self, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return pybpf_map_delete(self, key, 1) < 0 ? -1 : 0;
    return pybpf_map_update(self, key, value, 0);
}

static PyObject *
Map_next_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyBPF_MapObject *m = MAP(self);
    PyObject *key = nargs ? args[0] : Py_None, *out;
    pybpf_arg k;
    int fd, r;

    if (nargs > 1)
        return PyErr_Format(PyExc_TypeError, "next_key(key=None) takes at most 1 argument");
    if (m->key_size == 0)
        return pybpf_map_err(self, EINVAL, "map next_key", "the map has no keys");
    k.view.obj = NULL;
    k.ptr = NULL;
    if (key != Py_None && pybpf_arg_get(key, &k, m->key_size, "key") < 0)
        return NULL;
    out = PyBytes_FromStringAndSize(NULL, m->key_size);
    if (!out) {
        pybpf_arg_release(&k);
        return NULL;
    }
    fd = pybpf_map_enter(self);
    if (fd < 0) {
        pybpf_arg_release(&k);
        Py_DECREF(out);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map_get_next_key(fd, k.ptr, PyBytes_AS_STRING(out));
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    pybpf_arg_release(&k);
    if (r < 0) {
        Py_DECREF(out);
        if (r == -ENOENT)
            Py_RETURN_NONE; /* past the last key (or the map is empty) */
        return pybpf_map_err(self, -r, "map next_key", NULL);
    }
    return out;
}

static PyObject *
Map_lookup_and_delete(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long long flags = 0;

    if (nargs > 2)
        return PyErr_Format(PyExc_TypeError,
                            "lookup_and_delete(key=None, flags=0) takes at most 2 arguments");
    if (nargs == 2 && pybpf_flags_arg(args[1], &flags) < 0)
        return NULL;
    return pybpf_map_lookup(self, nargs ? args[0] : Py_None, flags, 0, 1);
}

static int
Map_contains(PyObject *self, PyObject *key)
{
    PyBPF_MapObject *m = MAP(self);
    unsigned char small[256], *buf = small;
    pybpf_arg k;
    Py_ssize_t need;
    int fd, r, bloom = m->map_type == BPF_MAP_TYPE_BLOOM_FILTER;

    /* A BLOOM_FILTER has no keys: `value in m` asks the filter about a value, which the
     * kernel reads from the value buffer. */
    if (pybpf_arg_get(key, &k, bloom ? m->value_size : m->key_size, bloom ? "value" : "key") < 0)
        return -1;
    need = bloom ? m->value_size : m->raw_value_size;
    if (need > (Py_ssize_t)sizeof(small)) {
        buf = PyMem_Malloc(need);
        if (!buf) {
            pybpf_arg_release(&k);
            PyErr_NoMemory();
            return -1;
        }
    }
    if (bloom)
        memcpy(buf, k.ptr, need);
    fd = pybpf_map_enter(self);
    if (fd < 0) {
        r = -1;
        goto out;
    }
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map_lookup_elem(fd, bloom ? NULL : k.ptr, buf);
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    if (r == -ENOENT) {
        r = 0;
    } else if (r < 0) {
        pybpf_map_err(self, -r, "map lookup", NULL);
        r = -1;
    } else {
        r = 1;
    }
out:
    if (buf != small)
        PyMem_Free(buf);
    pybpf_arg_release(&k);
    return r;
}

static PyObject *
Map_freeze(PyObject *self, PyObject *unused)
{
    int fd = pybpf_map_enter(self), r;

    if (fd < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map_freeze(fd);
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    if (r < 0)
        return pybpf_map_err(self, -r, "map freeze",
                             -r == EBUSY ? "a writable mmap of the map exists" : NULL);
    Py_RETURN_NONE;
}

static PyObject *
pybpf_unpin(PyObject *mod, PyObject *arg)
{
    PyObject *path = NULL;
    int r;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = unlink(PyBytes_AS_STRING(path));
    Py_END_ALLOW_THREADS
    if (r < 0) {
        char op[300];
        int err = errno;
        snprintf(op, sizeof(op), "unpin %.256s", PyBytes_AS_STRING(path));
        Py_DECREF(path);
        return pybpf_err(pybpf_state_from_module(mod), err, op, NULL);
    }
    Py_DECREF(path);
    Py_RETURN_NONE;
}

/* The kernel's bpf_map_info as a dict, for Map.info() and the by-id walk (program.c).
 * flags_key: Map.info() has always said "flags", the walk "map_flags" (bpf/introspect.py
 * renames it), so the caller names it. */
static PyObject *
pybpf_map_info_dict(const struct bpf_map_info *info, const char *flags_key)
{
    PyObject *d = PyDict_New();

    if (!d)
        return NULL;
    if (PYBPF_SET_U64(d, "type", info->type) < 0 || PYBPF_SET_U64(d, "id", info->id) < 0 ||
        PYBPF_SET_U64(d, "key_size", info->key_size) < 0 ||
        PYBPF_SET_U64(d, "value_size", info->value_size) < 0 ||
        PYBPF_SET_U64(d, "max_entries", info->max_entries) < 0 ||
        PYBPF_SET_U64(d, flags_key, info->map_flags) < 0 ||
        pybpf_dict_set(d, "name", pybpf_decode_name(info->name, sizeof(info->name))) < 0 ||
        PYBPF_SET_U64(d, "ifindex", info->ifindex) < 0 ||
        PYBPF_SET_U64(d, "btf_vmlinux_value_type_id", info->btf_vmlinux_value_type_id) < 0 ||
        PYBPF_SET_U64(d, "netns_dev", info->netns_dev) < 0 ||
        PYBPF_SET_U64(d, "netns_ino", info->netns_ino) < 0 ||
        PYBPF_SET_U64(d, "btf_id", info->btf_id) < 0 ||
        PYBPF_SET_U64(d, "btf_key_type_id", info->btf_key_type_id) < 0 ||
        PYBPF_SET_U64(d, "btf_value_type_id", info->btf_value_type_id) < 0 ||
        PYBPF_SET_U64(d, "btf_vmlinux_id", info->btf_vmlinux_id) < 0 ||
        PYBPF_SET_U64(d, "map_extra", info->map_extra) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *
Map_info(PyObject *self, PyObject *unused)
{
    struct bpf_map_info info;
    int fd = pybpf_map_enter(self), r;

    if (fd < 0)
        return NULL;
    r = pybpf_map_read_info(self, fd, &info);
    pybpf_map_leave(self);
    if (r < 0)
        return NULL;
    return pybpf_map_info_dict(&info, "flags");
}

/* ---- batch operations ----------------------------------------------------------------------
 * The kernel's rules: the cursor (in_batch/out_batch) is a u32 bucket index for the hash
 * family and a key for arrays and others, so it is kept as max(key_size, 4) opaque bytes;
 * ENOENT means the end was reached, with `count` holding the partial results; ENOSPC means
 * the room left is smaller than the next hash bucket; on other errors `count` says how many
 * elements were done. */

static Py_ssize_t
pybpf_map_cursor_size(PyBPF_MapObject *m)
{
    return m->key_size > 4 ? m->key_size : 4;
}

/* lookup_batch / lookup_and_delete_batch: fill the caller's key and value buffers, with as
 * many syscalls as it takes, from `cursor` (None = the start).  Returns (n, next_cursor), the
 * cursor being None once the whole map was read. */
static PyObject *
pybpf_map_lookup_batch_common(PyObject *self, PyObject *args, PyObject *kwds, int del)
{
    static char *kwlist[] = {"keys", "values", "cursor", "count", "flags", NULL};
    PyBPF_MapObject *m = MAP(self);
    PyObject *keys, *values, *cursor = Py_None, *res = NULL, *next = NULL;
    Py_ssize_t cap, total = 0, csz = pybpf_map_cursor_size(m), want = -1;
    unsigned long long flags = 0;
    Py_buffer kb, vb, cb;
    unsigned char *in = NULL, *outc = NULL;
    int fd, r = 0, done = 0, has_in = 0;
    const char *op = del ? "map lookup_and_delete_batch" : "map lookup_batch";

    if (!PyArg_ParseTupleAndKeywords(args, kwds, del ? "OO|OnK:lookup_and_delete_batch"
                                                     : "OO|OnK:lookup_batch",
                                     kwlist, &keys, &values, &cursor, &want, &flags))
        return NULL;
    if (m->key_size == 0)
        return pybpf_map_err(self, EINVAL, op, "the map has no keys");
    if (pybpf_get_buffer(keys, &kb, -1, "keys", 1) < 0)
        return NULL;
    if (pybpf_get_buffer(values, &vb, -1, "values", 1) < 0) {
        PyBuffer_Release(&kb);
        return NULL;
    }
    cap = kb.len / m->key_size;
    if (m->raw_value_size && vb.len / m->raw_value_size < cap)
        cap = vb.len / m->raw_value_size;
    if (want >= 0 && want < cap)
        cap = want;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    if (cap <= 0) {
        PyErr_Format(PyExc_ValueError,
                     "keys and values must hold at least one element (%u and %zd bytes), got "
                     "%zd and %zd bytes",
                     m->key_size, m->raw_value_size, kb.len, vb.len);
        goto out;
    }
    in = PyMem_Calloc(2, csz);
    if (!in) {
        PyErr_NoMemory();
        goto out;
    }
    outc = in + csz;
    if (cursor != Py_None) {
        if (pybpf_get_buffer(cursor, &cb, csz, "cursor", 0) < 0)
            goto out;
        memcpy(in, cb.buf, csz);
        PyBuffer_Release(&cb);
        has_in = 1;
    }
    fd = pybpf_map_enter(self);
    if (fd < 0)
        goto out;
    Py_BEGIN_ALLOW_THREADS
    {
        LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
        while (total < cap) {
            __u32 count = (__u32)(cap - total);
            char *kp = (char *)kb.buf + total * m->key_size;
            char *vp = (char *)vb.buf + total * m->raw_value_size;
            r = del ? bpf_map_lookup_and_delete_batch(fd, has_in ? in : NULL, outc, kp, vp,
                                                      &count, &opts)
                    : bpf_map_lookup_batch(fd, has_in ? in : NULL, outc, kp, vp, &count,
                                           &opts);
            if (r < 0 && r != -ENOENT && r != -ENOSPC)
                break;
            if (r == -ENOSPC) {
                /* The next bucket does not fit in what is left: hand back what we have
                 * (the caller continues from the cursor), or fail if that is nothing. */
                if (total > 0)
                    r = 0;
                break;
            }
            total += count;
            if (r == -ENOENT) {
                done = 1;
                r = 0;
                break;
            }
            memcpy(in, outc, csz);
            has_in = 1;
        }
    }
    Py_END_ALLOW_THREADS
    pybpf_map_leave(self);
    if (r < 0) {
        pybpf_map_batch_err(self, -r, op, (uint32_t)total, cap);
        goto out;
    }
    if (done) {
        next = Py_NewRef(Py_None);
    } else if (!has_in) {
        /* Nothing read and not at the end cannot happen (cap > 0); keep the start. */
        next = Py_NewRef(cursor);
    } else {
        next = PyBytes_FromStringAndSize((char *)in, csz);
        if (!next)
            goto out;
    }
    res = Py_BuildValue("(nN)", total, next);
out:
    PyMem_Free(in);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&vb);
    return res;
}

static PyObject *
Map_lookup_batch(PyObject *self, PyObject *args, PyObject *kwds)
{
    return pybpf_map_lookup_batch_common(self, args, kwds, 0);
}

static PyObject *
Map_lookup_and_delete_batch(PyObject *self, PyObject *args, PyObject *kwds)
{
    return pybpf_map_lookup_batch_common(self, args, kwds, 1);
}

/* update_batch(keys, values, flags=0) / delete_batch(keys, flags=0): all elements in one
 * syscall; returns how many were done; on failure the exception's .count says how many
 * succeeded.  One body: delete_batch is update_batch without the values. */
static PyObject *
pybpf_map_write_batch(PyObject *self, PyObject *args, PyObject *kwds, int del)
{
    static char *update_kw[] = {"keys", "values", "flags", NULL};
    static char *delete_kw[] = {"keys", "flags", NULL};
    PyBPF_MapObject *m = MAP(self);
    PyObject *keys, *values = NULL;
    unsigned long long flags = 0;
    Py_buffer kb, vb = {0};
    Py_ssize_t n;
    __u32 count;
    int fd, r;
    const char *op = del ? "map delete_batch" : "map update_batch";

    if (del ? !PyArg_ParseTupleAndKeywords(args, kwds, "O|K:delete_batch", delete_kw, &keys,
                                           &flags)
            : !PyArg_ParseTupleAndKeywords(args, kwds, "OO|K:update_batch", update_kw, &keys,
                                           &values, &flags))
        return NULL;
    if (m->key_size == 0)
        return pybpf_map_err(self, EINVAL, op, "the map has no keys");
    if (pybpf_get_buffer(keys, &kb, -1, "keys", 0) < 0)
        return NULL;
    if (kb.len % m->key_size) {
        PyErr_Format(PyExc_ValueError, "keys must be a multiple of key_size %u bytes, got %zd",
                     m->key_size, kb.len);
        PyBuffer_Release(&kb);
        return NULL;
    }
    n = kb.len / m->key_size;
    if (n > UINT32_MAX) {
        PyBuffer_Release(&kb);
        return PyErr_Format(PyExc_ValueError, "too many elements for one batch");
    }
    if (values && pybpf_get_buffer(values, &vb, n * m->raw_value_size, "values", 0) < 0) {
        PyBuffer_Release(&kb);
        return NULL;
    }
    count = (__u32)n;
    fd = pybpf_map_enter(self);
    r = 0;
    if (fd >= 0 && n) {
        Py_BEGIN_ALLOW_THREADS
        LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
        r = del ? bpf_map_delete_batch(fd, kb.buf, &count, &opts)
                : bpf_map_update_batch(fd, kb.buf, vb.buf, &count, &opts);
        Py_END_ALLOW_THREADS
    }
    if (fd >= 0)
        pybpf_map_leave(self);
    PyBuffer_Release(&kb);
    if (vb.obj)
        PyBuffer_Release(&vb);
    if (fd < 0)
        return NULL;
    if (r < 0) {
        /* The kernel writes count back only once it has started on the elements; an early
         * refusal leaves our input there, and then nothing was done. */
        if (count >= n)
            count = 0;
        if (!del && r == -EINVAL && (flags & ~(unsigned long long)BPF_F_LOCK))
            return pybpf_map_err(self, EINVAL, op,
                                 "batch updates take no NOEXIST/EXIST flags, only LOCK");
        return pybpf_map_batch_err(self, -r, op, count, n);
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *
Map_update_batch(PyObject *self, PyObject *args, PyObject *kwds)
{
    return pybpf_map_write_batch(self, args, kwds, 0);
}

static PyObject *
Map_delete_batch(PyObject *self, PyObject *args, PyObject *kwds)
{
    return pybpf_map_write_batch(self, args, kwds, 1);
}

/* _split(buf, size, n) -> list of n bytes objects of `size` bytes each: the fast way to turn
 * a packed batch buffer into per-element bytes for items()/keys()/values(). */
static PyObject *
pybpf_split(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer b;
    Py_ssize_t size, n, i;
    PyObject *list;

    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "_split(buf, size, n) takes 3 arguments");
    size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    n = PyLong_AsSsize_t(args[2]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0 || n < 0)
        return PyErr_Format(PyExc_ValueError, "size and n must be >= 0");
    if (pybpf_get_buffer(args[0], &b, -1, "buf", 0) < 0)
        return NULL;
    if (size && n > b.len / size) {
        PyBuffer_Release(&b);
        return PyErr_Format(PyExc_ValueError, "buf holds %zd bytes, less than %zd * %zd",
                            b.len, n, size);
    }
    list = PyList_New(n);
    if (!list)
        goto out;
    for (i = 0; i < n; i++) {
        PyObject *it = PyBytes_FromStringAndSize((char *)b.buf + i * size, size);
        if (!it) {
            Py_CLEAR(list);
            goto out;
        }
        PyList_SET_ITEM(list, i, it);
    }
out:
    PyBuffer_Release(&b);
    return list;
}

/* ---- attributes ----------------------------------------------------------------------------*/

static PyObject *
Map_get_name(PyObject *self, void *c)
{
    return PyUnicode_DecodeUTF8(MAP(self)->name, strlen(MAP(self)->name), "replace");
}

static PyObject *
Map_repr(PyObject *self)
{
    PyBPF_MapObject *m = MAP(self);
    const char *tn = Py_TYPE(self)->tp_name, *dot = strrchr(tn, '.');

    if (dot)
        tn = dot + 1;
    if (pybpf_fd_closed(&m->base))
        return PyUnicode_FromFormat("<%s %s '%s' id=%u closed>", tn,
                                    pybpf_map_type_name(m->map_type), m->name, m->id);
    return PyUnicode_FromFormat("<%s %s '%s' id=%u fd=%d key_size=%u value_size=%u "
                                "max_entries=%u>",
                                tn, pybpf_map_type_name(m->map_type), m->name, m->id,
                                m->base.fd, m->key_size, m->value_size, m->max_entries);
}

static PyMethodDef Map_methods[] = {
    PYBPF_FD_METHODS,
    {"create", (PyCFunction)(void (*)(void))Map_create,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("create(map_type, key_size=0, value_size=0, max_entries=0, flags=0, name=None, "
               "*, inner_map=None, numa_node=-1, map_extra=0, btf=None, btf_key_type_id=0, "
               "btf_value_type_id=0, btf_vmlinux_value_type_id=0, value_type_btf_obj=None, "
               "ifindex=0, token=None)\n--\n\nCreate a kernel map and return it, owning its "
               "fd. inner_map, btf, value_type_btf_obj and token take a bpf object, an fd or "
               "anything with fileno(). Raises BPFError (EINVAL for attributes the type "
               "refuses).")},
    {"from_fd", (PyCFunction)(void (*)(void))Map_from_fd,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("from_fd(fd, transfer=False)\n--\n\nAdopt a map fd: dup it (never keeping fd "
               "0), or take it over with transfer=True.")},
    {"from_pin", (PyCFunction)(void (*)(void))Map_from_pin,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("from_pin(path, flags=0)\n--\n\nOpen a map pinned on bpffs; flags may be "
               "MapFlags.RDONLY or MapFlags.WRONLY.")},
    {"from_id", (PyCFunction)(void (*)(void))Map_from_id,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("from_id(id, flags=0)\n--\n\nOpen a loaded map by id; flags may be "
               "MapFlags.RDONLY or MapFlags.WRONLY.")},
    {"lookup", (PyCFunction)(void (*)(void))Map_lookup, METH_FASTCALL,
     PyDoc_STR("lookup(key, flags=0)\n--\n\nReturn the raw value of key, or None if absent. "
               "For QUEUE/STACK pass key=None to peek.")},
    {"get", (PyCFunction)(void (*)(void))Map_get, METH_FASTCALL,
     PyDoc_STR("get(key, default=None)\n--\n\nReturn the raw value of key, or default.")},
    {"lookup_into", (PyCFunction)(void (*)(void))Map_lookup_into, METH_FASTCALL,
     PyDoc_STR("lookup_into(key, out, flags=0)\n--\n\nCopy the raw value of key into the "
               "writable buffer out (at least raw_value_size bytes); return False if absent.")},
    {"update", (PyCFunction)(void (*)(void))Map_update, METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("update(key, value, flags=UpdateFlags.ANY)\n--\n\nSet key to the raw value. "
               "KeyExistsError for NOEXIST on an existing key, KeyNotFoundError for EXIST on "
               "a missing one.")},
    {"delete", Map_delete, METH_O,
     PyDoc_STR("delete(key)\n--\n\nDelete key; return False if it was absent.")},
    {"next_key", (PyCFunction)(void (*)(void))Map_next_key, METH_FASTCALL,
     PyDoc_STR("next_key(key=None)\n--\n\nReturn the key after key (the first key for None), "
               "or None at the end.")},
    {"lookup_and_delete", (PyCFunction)(void (*)(void))Map_lookup_and_delete, METH_FASTCALL,
     PyDoc_STR("lookup_and_delete(key=None, flags=0)\n--\n\nRemove key and return its raw "
               "value, or None if absent. For QUEUE/STACK (key=None) this pops.")},
    {"freeze", Map_freeze, METH_NOARGS,
     PyDoc_STR("Make the map read-only for user space, for good.")},
    {"pin", pybpf_fd_pin, METH_O, PyDoc_STR("pin(path)\n--\n\nPin the map at path on bpffs.")},
    {"info", Map_info, METH_NOARGS, PyDoc_STR("Return the kernel's map info as a dict.")},
    {"lookup_batch", (PyCFunction)(void (*)(void))Map_lookup_batch,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("lookup_batch(keys, values, cursor=None, count=-1, flags=0)\n--\n\nFill the "
               "writable buffers keys and values with packed elements from cursor (None = "
               "start); return (n, next_cursor), next_cursor None at the end.")},
    {"lookup_and_delete_batch", (PyCFunction)(void (*)(void))Map_lookup_and_delete_batch,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("lookup_and_delete_batch(keys, values, cursor=None, count=-1, flags=0)\n--\n\n"
               "Like lookup_batch, deleting what it returns.")},
    {"update_batch", (PyCFunction)(void (*)(void))Map_update_batch,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("update_batch(keys, values, flags=0)\n--\n\nSet n packed keys to n packed raw "
               "values in one syscall; return n. On failure the exception's .count says how "
               "many succeeded.")},
    {"delete_batch", (PyCFunction)(void (*)(void))Map_delete_batch,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("delete_batch(keys, flags=0)\n--\n\nDelete n packed keys in one syscall; "
               "return n. On failure the exception's .count says how many were deleted.")},
    {NULL, NULL, 0, NULL},
};

#define MAP_U32(field, doc)                                                                 \
    {#field, T_UINT, offsetof(PyBPF_MapObject, field), READONLY, PyDoc_STR(doc)}

static PyMemberDef Map_members[] = {
    PYBPF_FD_MEMBERS,
    {"type", T_UINT, offsetof(PyBPF_MapObject, map_type), READONLY,
     PyDoc_STR("The map type (int; bpf.Map gives a MapType).")},
    MAP_U32(id, "The kernel's id of the map."),
    MAP_U32(key_size, "Key size in bytes."),
    MAP_U32(value_size, "Value size in bytes (per CPU for per-CPU maps)."),
    MAP_U32(max_entries, "Capacity the map was created with."),
    {"flags", T_UINT, offsetof(PyBPF_MapObject, map_flags), READONLY,
     PyDoc_STR("map_flags the map was created with.")},
    {"map_extra", T_ULONGLONG, offsetof(PyBPF_MapObject, map_extra), READONLY,
     PyDoc_STR("map_extra (BLOOM_FILTER hash count, ARENA address).")},
    {"raw_value_size", T_PYSSIZET, offsetof(PyBPF_MapObject, raw_value_size), READONLY,
     PyDoc_STR("Bytes one raw lookup returns (round_up(value_size, 8) * possible_cpus() for "
               "per-CPU maps).")},
    {NULL},
};

static PyGetSetDef Map_getsets[] = {
    PYBPF_FD_GETSETS,
    {"name", Map_get_name, NULL, PyDoc_STR("The map's name (at most 15 characters)."), NULL},
    {NULL},
};

static PyType_Slot Map_slots[] = {
    {Py_tp_doc, PyDoc_STR("A BPF map, owning its file descriptor. Raw bytes in and out.")},
    {Py_tp_new, Map_new},
    {Py_tp_repr, Map_repr},
    {Py_tp_methods, Map_methods},
    {Py_tp_members, Map_members},
    {Py_tp_getset, Map_getsets},
    {Py_tp_finalize, pybpf_fd_finalize},
    {Py_tp_dealloc, pybpf_fd_dealloc},
    {Py_tp_traverse, pybpf_fd_traverse},
    {Py_mp_subscript, Map_subscript},
    {Py_mp_ass_subscript, Map_ass_subscript},
    {Py_sq_contains, Map_contains},
    {0, NULL},
};

static PyType_Spec Map_spec = {
    .name = "bpf._bpf.Map",
    .basicsize = sizeof(PyBPF_MapObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Map_slots,
};

static PyMethodDef pybpf_map_functions[] = {
    {"unpin", pybpf_unpin, METH_O,
     PyDoc_STR("unpin(path)\n--\n\nRemove a pin from bpffs (the object lives on while other "
               "fds, pins or links hold it).")},
    {"_split", (PyCFunction)(void (*)(void))pybpf_split, METH_FASTCALL,
     PyDoc_STR("_split(buf, size, n) -> list of n bytes objects of size bytes each.")},
    {NULL, NULL, 0, NULL},
};

static int
pybpf_map_init(PyObject *m, pybpf_state *st)
{
    return pybpf_add_type(m, &Map_spec, &st->Map_Type, pybpf_map_functions);
}
