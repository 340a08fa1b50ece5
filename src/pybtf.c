/* BTF: type information, parsed by libbpf (from the kernel, a file, bytes or built here).
 *
 * A BTF object owns a `struct btf *`.  Loading it into the kernel gives it an fd, which
 * libbpf's btf__free() closes; so this type keeps its own ownership (btf == NULL once closed)
 * rather than the fd base: an unloaded BTF is open but has no fd. */

typedef struct {
    PyObject_HEAD
    struct btf *btf;    /* owned; NULL once closed */
    PyObject *weakreflist;
} PyBPF_BTF;

static struct btf *
pybpf_btf_get(PyBPF_BTF *self)
{
    if (!self->btf)
        PyErr_SetString(PyExc_ValueError, "operation on closed BTF");
    return self->btf;
}

static PyObject *
pybpf_btf_wrap(PyTypeObject *cls, struct btf *btf, const char *op)
{
    PyBPF_BTF *self;

    if (!btf)
        return pybpf_err(pybpf_state_from_type(cls), errno ? errno : EINVAL, op, NULL);
    self = (PyBPF_BTF *)cls->tp_alloc(cls, 0);
    if (!self) {
        btf__free(btf);
        return NULL;
    }
    self->btf = btf;
    return (PyObject *)self;
}

static PyObject *
BTF_vmlinux(PyObject *cls, PyObject *unused)
{
    struct btf *b;

    errno = 0;
    Py_BEGIN_ALLOW_THREADS
    b = btf__load_vmlinux_btf();
    Py_END_ALLOW_THREADS
    return pybpf_btf_wrap((PyTypeObject *)cls, b, "load vmlinux BTF");
}

static PyObject *
BTF_from_file(PyObject *cls, PyObject *arg)
{
    PyObject *path;
    struct btf *b;

    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    errno = 0;
    Py_BEGIN_ALLOW_THREADS
    b = btf__parse(PyBytes_AS_STRING(path), NULL);  /* ELF .BTF section or raw BTF */
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    return pybpf_btf_wrap((PyTypeObject *)cls, b, "parse BTF file");
}

static PyObject *
BTF_from_bytes(PyObject *cls, PyObject *arg)
{
    Py_buffer view;
    struct btf *b;

    if (pybpf_get_buffer(arg, &view, -1, "BTF data", 0) < 0)
        return NULL;
    if (view.len > UINT32_MAX) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "BTF data too large: %zd bytes", view.len);
    }
    errno = 0;
    b = btf__new(view.buf, (__u32)view.len);  /* copies the data */
    PyBuffer_Release(&view);
    return pybpf_btf_wrap((PyTypeObject *)cls, b, "parse BTF data");
}

static PyObject *
BTF_from_id(PyObject *cls, PyObject *arg)
{
    unsigned long id = PyLong_AsUnsignedLong(arg);
    struct btf *b;

    if (id == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    errno = 0;
    Py_BEGIN_ALLOW_THREADS
    b = btf__load_from_kernel_by_id((__u32)id);
    Py_END_ALLOW_THREADS
    return pybpf_btf_wrap((PyTypeObject *)cls, b, "load BTF by id");
}

static PyObject *
BTF_new_empty(PyObject *cls, PyObject *unused)
{
    errno = 0;
    return pybpf_btf_wrap((PyTypeObject *)cls, btf__new_empty(), "create BTF");
}

static Py_ssize_t
BTF_len(PyObject *self)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);

    return b ? (Py_ssize_t)btf__type_cnt(b) : -1;
}

static PyObject *
BTF_find_id(PyObject *self, PyObject *args)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    const char *name;
    int kind = -1;
    __s32 id;

    if (!b || !PyArg_ParseTuple(args, "s|i:find_id", &name, &kind))
        return NULL;
    id = kind < 0 ? btf__find_by_name(b, name) : btf__find_by_name_kind(b, name, (__u32)kind);
    if (id < 0)
        return PyErr_Format(PyExc_KeyError, "no BTF type named %R", PyTuple_GET_ITEM(args, 0));
    return PyLong_FromLong(id);
}

static PyObject *
pybpf_btf_str(struct btf *b, __u32 off)
{
    const char *s = btf__name_by_offset(b, off);

    return PyUnicode_DecodeUTF8(s ? s : "", s ? strlen(s) : 0, "replace");
}

/* Element i of a type with a member list, as type_info() reports it (see below).  The
 * kinds lay their vlen elements out differently but are listed alike, so type_info() has
 * one list loop and the per-kind part is here. */
static PyObject *
pybpf_btf_elem(struct btf *b, const struct btf_type *t, int i)
{
    switch (btf_kind(t)) {
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
        const struct btf_member *m = btf_members(t) + i;
        return Py_BuildValue("(NIII)", pybpf_btf_str(b, m->name_off), m->type,
                             btf_member_bit_offset(t, i), btf_member_bitfield_size(t, i));
    }
    case BTF_KIND_ENUM: {
        const struct btf_enum *e = btf_enum(t) + i;
        /* kflag set: the values are signed */
        return btf_kflag(t)
            ? Py_BuildValue("(Nl)", pybpf_btf_str(b, e->name_off), (long)(__s32)e->val)
            : Py_BuildValue("(Nk)", pybpf_btf_str(b, e->name_off), (unsigned long)e->val);
    }
    case BTF_KIND_ENUM64: {
        const struct btf_enum64 *e = btf_enum64(t) + i;
        unsigned long long v = btf_enum64_value(e);
        return btf_kflag(t)
            ? Py_BuildValue("(NL)", pybpf_btf_str(b, e->name_off), (long long)v)
            : Py_BuildValue("(NK)", pybpf_btf_str(b, e->name_off), v);
    }
    case BTF_KIND_FUNC_PROTO: {
        const struct btf_param *p = btf_params(t) + i;
        return Py_BuildValue("(NI)", pybpf_btf_str(b, p->name_off), p->type);
    }
    default: { /* BTF_KIND_DATASEC */
        const struct btf_var_secinfo *v = btf_var_secinfos(t) + i;
        return Py_BuildValue("(III)", v->type, v->offset, v->size);
    }
    }
}

/* type_info(id) -> (kind, name, size_or_type, details).  details depends on the kind:
 * INT (encoding, bit_offset, bits); ARRAY (elem, index, nelems); STRUCT/UNION
 * [(name, type, bit_offset, bitfield_size)]; ENUM/ENUM64 [(name, value)];
 * FUNC_PROTO [(name, type)]; VAR linkage; DATASEC [(type, offset, size)]; others None. */
static PyObject *
BTF_type_info(PyObject *self, PyObject *arg)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    const struct btf_type *t;
    long id;
    int kind, i, n;
    PyObject *details = NULL, *name, *res;

    if (!b)
        return NULL;
    id = PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    if (id < 0 || id >= (long)btf__type_cnt(b))
        return PyErr_Format(PyExc_KeyError, "no BTF type with id %ld", id);
    if (id == 0)
        return Py_BuildValue("(isIO)", 0, "void", 0, Py_None);
    t = btf__type_by_id(b, (__u32)id);
    if (!t)
        return PyErr_Format(PyExc_KeyError, "no BTF type with id %ld", id);
    kind = btf_kind(t);
    n = btf_vlen(t);
    switch (kind) {
    case BTF_KIND_INT: {
        __u32 v = *(const __u32 *)(t + 1);
        details = Py_BuildValue("(III)", BTF_INT_ENCODING(v), BTF_INT_OFFSET(v), BTF_INT_BITS(v));
        break;
    }
    case BTF_KIND_ARRAY: {
        const struct btf_array *a = btf_array(t);
        details = Py_BuildValue("(III)", a->type, a->index_type, a->nelems);
        break;
    }
    case BTF_KIND_VAR:
        details = PyLong_FromUnsignedLong(btf_var(t)->linkage);
        break;
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
    case BTF_KIND_FUNC_PROTO:
    case BTF_KIND_DATASEC:
        details = PyList_New(n);
        for (i = 0; details && i < n; i++) {
            PyObject *item = pybpf_btf_elem(b, t, i);
            if (!item) {
                Py_CLEAR(details);
                break;
            }
            PyList_SET_ITEM(details, i, item);
        }
        break;
    default:
        details = Py_NewRef(Py_None);
    }
    if (!details)
        return NULL;
    name = pybpf_btf_str(b, t->name_off);
    if (!name) {
        Py_DECREF(details);
        return NULL;
    }
    /* size and type share a union in struct btf_type */
    res = Py_BuildValue("(iNIN)", kind, name, t->size, details);
    return res;
}

static PyObject *
BTF_resolve_size(PyObject *self, PyObject *arg)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    long id;
    __s64 sz;

    if (!b)
        return NULL;
    id = PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    sz = btf__resolve_size(b, (__u32)id);
    if (sz < 0)
        return pybpf_err(PYBPF_STATE(self), (int)-sz, "resolve BTF type size", self);
    return PyLong_FromLongLong(sz);
}

static PyObject *
BTF_add(PyObject *self, PyObject *args)
{
    /* add(kind_name, ...): the few builders needed to describe map keys and values.
     *   ("int", name, size, encoding) ("struct", name, size) ("union", name, size)
     *   ("field", name, type_id, bit_offset, bitfield_size) ("array", elem, index, n)
     *   ("ptr", type) ("typedef", name, type) ("float", name, size)
     * and what BTF func_info for Program.load needs:
     *   ("func_proto", ret_type) ("func_param", name, type) ("func", name, proto, linkage)
     * func_param appends to the func_proto added last, as field does to the last struct.
     *   ("str", text) adds a string and returns its offset (for line_info records). */
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    const char *what, *name = NULL;
    int a = 0, c = 0, d = 0, r;

    if (!b)
        return NULL;
    if (PyTuple_GET_SIZE(args) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0)))
        return PyErr_Format(PyExc_TypeError, "add() needs a kind name first");
    what = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 0));
    if (!what)
        return NULL;
    errno = 0;
    if (!strcmp(what, "int")) {
        if (!PyArg_ParseTuple(args, "ssi|i", &what, &name, &a, &c))
            return NULL;
        r = btf__add_int(b, name, (size_t)a, c);
    } else if (!strcmp(what, "struct") || !strcmp(what, "union")) {
        if (!PyArg_ParseTuple(args, "ssi", &what, &name, &a))
            return NULL;
        r = what[0] == 's' ? btf__add_struct(b, name, (__u32)a) : btf__add_union(b, name, (__u32)a);
    } else if (!strcmp(what, "field")) {
        if (!PyArg_ParseTuple(args, "ssii|i", &what, &name, &a, &c, &d))
            return NULL;
        r = btf__add_field(b, name, a, (__u32)c, (__u32)d);
    } else if (!strcmp(what, "array")) {
        if (!PyArg_ParseTuple(args, "siii", &what, &a, &c, &d))
            return NULL;
        r = btf__add_array(b, c, a, (__u32)d);  /* libbpf takes (index, elem, n) */
    } else if (!strcmp(what, "ptr")) {
        if (!PyArg_ParseTuple(args, "si", &what, &a))
            return NULL;
        r = btf__add_ptr(b, a);
    } else if (!strcmp(what, "typedef")) {
        if (!PyArg_ParseTuple(args, "ssi", &what, &name, &a))
            return NULL;
        r = btf__add_typedef(b, name, a);
    } else if (!strcmp(what, "float")) {
        if (!PyArg_ParseTuple(args, "ssi", &what, &name, &a))
            return NULL;
        r = btf__add_float(b, name, (size_t)a);
    } else if (!strcmp(what, "func_proto")) {
        if (!PyArg_ParseTuple(args, "si", &what, &a))
            return NULL;
        r = btf__add_func_proto(b, a);
    } else if (!strcmp(what, "func_param")) {
        if (!PyArg_ParseTuple(args, "ssi", &what, &name, &a))
            return NULL;
        r = btf__add_func_param(b, name, a);
    } else if (!strcmp(what, "func")) {
        /* linkage: 0 static, 1 global, 2 extern (enum btf_func_linkage) */
        if (!PyArg_ParseTuple(args, "ssi|i", &what, &name, &a, &c))
            return NULL;
        r = btf__add_func(b, name, (enum btf_func_linkage)c, a);
    } else if (!strcmp(what, "str")) {
        if (!PyArg_ParseTuple(args, "ss", &what, &name))
            return NULL;
        r = btf__add_str(b, name);
    } else {
        return PyErr_Format(PyExc_ValueError, "unknown BTF kind to add: %s", what);
    }
    if (r < 0)
        return pybpf_err(PYBPF_STATE(self), -r, "add BTF type", self);
    return PyLong_FromLong(r);
}

static PyObject *
BTF_load(PyObject *self, PyObject *unused)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    int r;

    if (!b)
        return NULL;
    if (btf__fd(b) >= 0)
        return PyLong_FromLong(btf__fd(b));
    Py_BEGIN_ALLOW_THREADS
    r = btf__load_into_kernel(b);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(PYBPF_STATE(self), -r, "load BTF into the kernel", self);
    return PyLong_FromLong(btf__fd(b));
}

static PyObject *
BTF_get_fd(PyObject *self, void *c)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    int fd;

    if (!b)
        return NULL;
    /* libbpf keeps a failed load's -errno in the fd field: report "no fd" as -1, never
     * a negative errno that looks like an fd value. */
    fd = btf__fd(b);
    return PyLong_FromLong(fd < 0 ? -1 : fd);
}

static PyObject *
BTF_get_closed(PyObject *self, void *c)
{
    return PyBool_FromLong(((PyBPF_BTF *)self)->btf == NULL);
}

static PyObject *
BTF_raw(PyObject *self, PyObject *unused)
{
    struct btf *b = pybpf_btf_get((PyBPF_BTF *)self);
    const void *data;
    __u32 size = 0;

    if (!b)
        return NULL;
    data = btf__raw_data(b, &size);
    if (!data)
        return PyErr_NoMemory();
    return PyBytes_FromStringAndSize(data, size);
}

static PyObject *
BTF_close(PyObject *self, PyObject *unused)
{
    PyBPF_BTF *o = (PyBPF_BTF *)self;

    if (o->btf) {
        btf__free(o->btf);  /* also closes the kernel fd, if loaded */
        o->btf = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
BTF_enter(PyObject *self, PyObject *unused)
{
    if (!pybpf_btf_get((PyBPF_BTF *)self))
        return NULL;
    return Py_NewRef(self);
}

static PyObject *
BTF_exit(PyObject *self, PyObject *args)
{
    BTF_close(self, NULL);
    Py_RETURN_FALSE;
}

static void
BTF_finalize(PyObject *self)
{
    PyBPF_BTF *o = (PyBPF_BTF *)self;
    PyObject *type, *value, *tb;

    if (!o->btf)
        return;
    PyErr_Fetch(&type, &value, &tb);
    /* Parsed BTF is plain memory; only a kernel fd left open deserves a warning. */
    if (btf__fd(o->btf) >= 0 &&
        PyErr_ResourceWarning(self, 1, "unclosed BTF with kernel fd %d", btf__fd(o->btf)) < 0)
        PyErr_WriteUnraisable(self);
    btf__free(o->btf);
    o->btf = NULL;
    PyErr_Restore(type, value, tb);
}

static void
BTF_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyBPF_BTF *o = (PyBPF_BTF *)self;

    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return;
    PyObject_GC_UnTrack(self);
    if (o->weakreflist)
        PyObject_ClearWeakRefs(self);
    if (o->btf)
        btf__free(o->btf);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef BTF_methods[] = {
    {"vmlinux", BTF_vmlinux, METH_NOARGS | METH_CLASS,
     PyDoc_STR("Load the running kernel's BTF (/sys/kernel/btf/vmlinux).")},
    {"from_file", BTF_from_file, METH_O | METH_CLASS,
     PyDoc_STR("Parse BTF from a file: an ELF object's .BTF section or raw BTF.")},
    {"from_bytes", BTF_from_bytes, METH_O | METH_CLASS, PyDoc_STR("Parse raw BTF data.")},
    {"from_id", BTF_from_id, METH_O | METH_CLASS,
     PyDoc_STR("Read a BTF object loaded in the kernel, by its id.")},
    {"new", BTF_new_empty, METH_NOARGS | METH_CLASS, PyDoc_STR("Start an empty BTF.")},
    {"find_id", BTF_find_id, METH_VARARGS,
     PyDoc_STR("find_id(name, kind=-1): return the id of a named type (KeyError if none).")},
    {"type_info", BTF_type_info, METH_O,
     PyDoc_STR("type_info(id) -> (kind, name, size_or_type, details).")},
    {"resolve_size", BTF_resolve_size, METH_O, PyDoc_STR("Return the byte size of a type.")},
    {"add", BTF_add, METH_VARARGS, PyDoc_STR("Add a type (see bpf.BTF); return its id.")},
    {"load", BTF_load, METH_NOARGS,
     PyDoc_STR("Load into the kernel (once); return the BTF fd, owned by this object.")},
    {"raw", BTF_raw, METH_NOARGS, PyDoc_STR("Return the raw BTF bytes.")},
    {"close", BTF_close, METH_NOARGS, PyDoc_STR("Free the BTF (and its kernel fd). Idempotent.")},
    {"__enter__", BTF_enter, METH_NOARGS, NULL},
    {"__exit__", BTF_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef BTF_getset[] = {
    {"fd", BTF_get_fd, NULL, PyDoc_STR("Kernel fd after load(), else -1."), NULL},
    {"closed", BTF_get_closed, NULL, PyDoc_STR("True once close() was called."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef BTF_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PyBPF_BTF, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot BTF_slots[] = {
    {Py_tp_doc, "Type information (BTF) parsed by libbpf. See bpf.BTF."},
    {Py_tp_methods, BTF_methods},
    {Py_tp_getset, BTF_getset},
    {Py_tp_members, BTF_members},
    {Py_mp_length, BTF_len},
    {Py_tp_finalize, BTF_finalize},
    {Py_tp_dealloc, BTF_dealloc},
    {Py_tp_traverse, pybpf_fd_traverse},
    {0, NULL},
};

static PyType_Spec BTF_spec = {
    .name = "bpf._bpf.BTF",
    .basicsize = sizeof(PyBPF_BTF),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = BTF_slots,
};

static int
pybpf_btf_init(PyObject *m, pybpf_state *st)
{
    return pybpf_add_type(m, &BTF_spec, &st->BTF_Type, NULL);
}
