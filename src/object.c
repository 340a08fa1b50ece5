/* Object: ELF objects opened and loaded through libbpf.
 *
 * _bpf.Object wraps one `struct bpf_object *`.  It is not an fd object (libbpf owns the map and
 * program fds it creates), so it has its own close/closed/context-manager methods, with the
 * same rules as the fd base: close() is idempotent, a closed object raises ValueError, and a
 * close() racing a load() in another thread is deferred until the load returns.
 *
 * The C layer stays thin: spec views are plain dicts, setters take a field name, and maps,
 * programs and global variables are addressed by name.  bpf/objects.py turns this into the
 * public bpf.Object (Map/Program objects, the globals mapping, error wording).
 */

typedef struct {
    PyObject_HEAD
    struct bpf_object *obj; /* owned; NULL once closed */
    PyObject *source;       /* bytes given to bpf_object__open_mem: libbpf keeps pointers into
                               the image until load, so we keep it alive until close */
    int loaded;             /* bpf_object__load succeeded */
    int load_failed;        /* bpf_object__load ran and failed: libbpf refuses a second try */
    int inflight;           /* calls running with the GIL released (load) */
    int closing;            /* close() came during such a call: the last one out closes */
    PyObject *weakreflist;
} PyBPF_Object;

#define PYBPF_OBJECT_DEFAULT_LOG_SIZE (1u << 20)

static void
pybpf_object_release(PyBPF_Object *self)
{
    struct bpf_object *obj = self->obj;

    self->obj = NULL;
    self->closing = 0;
    if (obj)
        bpf_object__close(obj); /* closes libbpf's own fds and unmaps the data sections */
    Py_CLEAR(self->source);
}

static int
pybpf_object_check(PyBPF_Object *self)
{
    if (!self->obj || self->closing) {
        PyErr_SetString(PyExc_ValueError, "operation on closed object");
        return -1;
    }
    if (self->inflight > 0) {
        /* libbpf rewrites programs and maps during bpf_object__load: no concurrent access */
        PyErr_SetString(PyExc_RuntimeError, "the object is being loaded in another thread");
        return -1;
    }
    return 0;
}

/* ---- open ------------------------------------------------------------------------------- */

static PyObject *
Object_open(PyTypeObject *cls, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"source", "name", "pin_root", "btf_custom_path", "kconfig", NULL};
    PyObject *source, *path = NULL, *image = NULL;
    const char *name = NULL, *pin_root = NULL, *btf_path = NULL, *kconfig = NULL;
    PyObject *pin_arg = Py_None, *btf_arg = Py_None, *pin_obj = NULL, *btf_obj = NULL;
    struct bpf_object *obj;
    PyBPF_Object *self;
    int err;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|zOOz:open", kwlist, &source, &name, &pin_arg,
                                     &btf_arg, &kconfig))
        return NULL;
    /* FSConverter refuses None, which means "libbpf's default" here. */
    if (pin_arg != Py_None && !PyUnicode_FSConverter(pin_arg, &pin_obj))
        return NULL;
    if (btf_arg != Py_None && !PyUnicode_FSConverter(btf_arg, &btf_obj)) {
        Py_XDECREF(pin_obj);
        return NULL;
    }
    if (pin_obj)
        pin_root = PyBytes_AS_STRING(pin_obj);
    if (btf_obj)
        btf_path = PyBytes_AS_STRING(btf_obj);

    if (PyObject_CheckBuffer(source) && !PyBytes_Check(source)) {
        Py_buffer view;
        if (pybpf_get_buffer(source, &view, -1, "source", 0) < 0)
            goto fail;
        image = PyBytes_FromStringAndSize(view.buf, view.len);
        PyBuffer_Release(&view);
        if (!image)
            goto fail;
    } else if (PyBytes_Check(source)) {
        image = Py_NewRef(source);
    } else {
        if (!PyUnicode_FSConverter(source, &path))
            goto fail;
    }

    {
        LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name, .pin_root_path = pin_root,
                    .btf_custom_path = btf_path, .kconfig = kconfig);
        const char *p = path ? PyBytes_AS_STRING(path) : NULL;
        const char *buf = image ? PyBytes_AS_STRING(image) : NULL;
        size_t len = image ? (size_t)PyBytes_GET_SIZE(image) : 0;

        /* Parsing reads the file and may log through the print hook (which takes the GIL). */
        Py_BEGIN_ALLOW_THREADS
        errno = 0;
        if (p)
            obj = bpf_object__open_file(p, &opts);
        else
            obj = bpf_object__open_mem(buf, len, &opts);
        err = errno;
        Py_END_ALLOW_THREADS
    }
    if (!obj) {
        if (!err)
            err = EINVAL;
        pybpf_err(pybpf_state_from_type(cls), err, "open object", path ? source : NULL);
        goto fail;
    }
    self = (PyBPF_Object *)cls->tp_alloc(cls, 0);
    if (!self) {
        bpf_object__close(obj);
        goto fail;
    }
    self->obj = obj;
    self->source = image;
    Py_XDECREF(path);
    Py_XDECREF(pin_obj);
    Py_XDECREF(btf_obj);
    return (PyObject *)self;
fail:
    Py_XDECREF(image);
    Py_XDECREF(path);
    Py_XDECREF(pin_obj);
    Py_XDECREF(btf_obj);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static PyObject *
Object_close(PyObject *op, PyObject *unused)
{
    PyBPF_Object *self = (PyBPF_Object *)op;

    if (!self->obj)
        Py_RETURN_NONE;
    if (self->inflight > 0) {
        self->closing = 1; /* a load() in another thread is using obj: it closes on return */
        Py_RETURN_NONE;
    }
    pybpf_object_release(self);
    Py_RETURN_NONE;
}

static PyObject *
Object_enter(PyObject *op, PyObject *unused)
{
    if (pybpf_object_check((PyBPF_Object *)op) < 0)
        return NULL;
    return Py_NewRef(op);
}

static PyObject *
Object_get_closed(PyObject *op, void *c)
{
    PyBPF_Object *self = (PyBPF_Object *)op;

    return PyBool_FromLong(!self->obj || self->closing);
}

static PyObject *
Object_get_loaded(PyObject *op, void *c)
{
    PyBPF_Object *self = (PyBPF_Object *)op;

    return PyBool_FromLong(self->obj && self->loaded);
}

static PyObject *
Object_get_name(PyObject *op, void *c)
{
    PyBPF_Object *self = (PyBPF_Object *)op;

    if (pybpf_object_check(self) < 0)
        return NULL;
    return PyUnicode_FromString(bpf_object__name(self->obj));
}

static PyObject *
Object_repr(PyObject *op)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    const char *tn = Py_TYPE(op)->tp_name;

    if (!self->obj || self->closing)
        return PyUnicode_FromFormat("<%s closed>", tn);
    return PyUnicode_FromFormat("<%s '%s' %s>", tn, bpf_object__name(self->obj),
                                self->loaded ? "loaded" : "opened");
}

static void
Object_finalize(PyObject *op)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    PyObject *type, *value, *tb;

    if (!self->obj)
        return;
    PyErr_Fetch(&type, &value, &tb);
    if (PyErr_ResourceWarning(op, 1, "unclosed object %R", op) < 0)
        PyErr_WriteUnraisable(op);
    pybpf_object_release(self);
    PyErr_Restore(type, value, tb);
}

static void
Object_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyBPF_Object *self = (PyBPF_Object *)op;

    if (PyObject_CallFinalizerFromDealloc(op) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(op);
    if (self->weakreflist)
        PyObject_ClearWeakRefs(op);
    pybpf_object_release(self);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* ---- name lookups ----------------------------------------------------------------------- */

static const char *
pybpf_name_arg(PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "name must be str, not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8(name);
}

/* Map by name: libbpf's own lookup (which also knows the internal maps by section name,
 * ".data", ".rodata", ...), or "outer.inner" for the inner-map spec of a map-in-map. */
static struct bpf_map *
pybpf_object_map_ex(PyBPF_Object *self, PyObject *name, int *is_inner)
{
    const char *s;
    struct bpf_map *map;
    size_t n;

    *is_inner = 0;
    if (pybpf_object_check(self) < 0 || !(s = pybpf_name_arg(name)))
        return NULL;
    map = bpf_object__find_map_by_name(self->obj, s);
    if (map)
        return map;
    n = strlen(s);
    if (n > 6 && strcmp(s + n - 6, ".inner") == 0) {
        char *outer = PyMem_Malloc(n - 5);
        if (!outer) {
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(outer, s, n - 6);
        outer[n - 6] = '\0';
        map = bpf_object__find_map_by_name(self->obj, outer);
        PyMem_Free(outer);
        if (map && (map = bpf_map__inner_map(map))) {
            *is_inner = 1;
            return map;
        }
    }
    PyErr_SetObject(PyExc_KeyError, name);
    return NULL;
}

/* A map every accessor may use.  Inner-map specs are refused: libbpf leaves their back
 * pointer to the object NULL, and its setters (and bpf_map__fd) dereference it. */
static struct bpf_map *
pybpf_object_map(PyBPF_Object *self, PyObject *name)
{
    int is_inner;
    struct bpf_map *map = pybpf_object_map_ex(self, name, &is_inner);

    if (map && is_inner) {
        PyErr_Format(PyExc_ValueError, "the inner map spec %R is read-only (libbpf cannot "
                     "change it): give the outer map a template map instead", name);
        return NULL;
    }
    return map;
}

static struct bpf_program *
pybpf_object_program(PyBPF_Object *self, PyObject *name)
{
    const char *s;
    struct bpf_program *prog;

    if (pybpf_object_check(self) < 0 || !(s = pybpf_name_arg(name)))
        return NULL;
    prog = bpf_object__find_program_by_name(self->obj, s);
    if (!prog)
        PyErr_SetObject(PyExc_KeyError, name);
    return prog;
}

/* The names of the object's maps or programs, in libbpf's order.  libbpf's iterators differ
 * only in type, so one loop walks either. */
static PyObject *
pybpf_object_names(PyObject *op, int programs)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    struct bpf_map *map = NULL;
    struct bpf_program *prog = NULL;
    PyObject *res, *s;

    if (pybpf_object_check(self) < 0)
        return NULL;
    if (!(res = PyList_New(0)))
        return NULL;
    for (;;) {
        const char *name;

        if (programs) {
            if (!(prog = bpf_object__next_program(self->obj, prog)))
                break;
            name = bpf_program__name(prog);
        } else {
            if (!(map = bpf_object__next_map(self->obj, map)))
                break;
            name = bpf_map__name(map);
        }
        s = PyUnicode_FromString(name);
        if (!s || PyList_Append(res, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(res);
            return NULL;
        }
        Py_DECREF(s);
    }
    return res;
}

static PyObject *
Object_map_names(PyObject *op, PyObject *unused)
{
    return pybpf_object_names(op, 0);
}

static PyObject *
Object_program_names(PyObject *op, PyObject *unused)
{
    return pybpf_object_names(op, 1);
}

/* A spec setter's libbpf call failed: name the field; EBUSY is libbpf saying "loaded". */
static PyObject *
pybpf_object_set_err(PyObject *op, int err, const char *what, const char *field,
                     PyObject *name)
{
    char op_name[64];

    snprintf(op_name, sizeof(op_name), "set %s %s", what, field);
    return pybpf_err_with(PYBPF_STATE(op), NULL, err, op_name, name,
                          err == EBUSY ? "the object is already loaded" : NULL);
}

/* End a call that ran with the GIL released (inflight was raised before it): the last one
 * out performs a close() that came meanwhile. */
static void
pybpf_object_leave(PyBPF_Object *self)
{
    if (--self->inflight == 0 && self->closing)
        pybpf_object_release(self);
}

/* ---- map specs -------------------------------------------------------------------------- */

static PyObject *
Object_map_spec(PyObject *op, PyObject *name)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    struct bpf_map *map, *inner;
    const char *pin;
    PyObject *inner_name;
    size_t init_size = 0;
    PyObject *res;
    int is_inner, fd;

    if (!(map = pybpf_object_map_ex(self, name, &is_inner)))
        return NULL;
    /* inner specs: no object back pointer, so no bpf_map__fd (see pybpf_object_map) */
    fd = (is_inner || !bpf_map__autocreate(map)) ? -1 : bpf_map__fd(map);
    pin = bpf_map__pin_path(map);
    inner = bpf_map__inner_map(map);
    if (inner)
        inner_name = PyUnicode_FromString(bpf_map__name(inner));
    else
        inner_name = Py_NewRef(Py_None);
    if (!inner_name)
        return NULL;
    if (bpf_map__is_internal(map))
        (void)bpf_map__initial_value(map, &init_size);
    res = Py_BuildValue(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:K,s:I,s:z,s:O,s:O,s:O,s:i,s:n}", "name",
        bpf_map__name(map), "type", (unsigned)bpf_map__type(map), "key_size",
        bpf_map__key_size(map), "value_size", bpf_map__value_size(map), "max_entries",
        bpf_map__max_entries(map), "flags", bpf_map__map_flags(map), "numa_node",
        bpf_map__numa_node(map), "map_extra", (unsigned long long)bpf_map__map_extra(map),
        "ifindex", bpf_map__ifindex(map), "pin_path", pin, "autocreate",
        bpf_map__autocreate(map) ? Py_True : Py_False, "internal",
        bpf_map__is_internal(map) ? Py_True : Py_False, "inner", inner_name, "fd", fd, "initial_size", (Py_ssize_t)init_size);
    Py_DECREF(inner_name);
    return res;
}

static PyObject *
Object_map_set(PyObject *op, PyObject *args)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    PyObject *name, *value;
    const char *field;
    struct bpf_map *map;
    unsigned long long v = 0;
    int r;

    if (!PyArg_ParseTuple(args, "UsO:map_set", &name, &field, &value))
        return NULL;
    if (!(map = pybpf_object_map(self, name)))
        return NULL;
    if (strcmp(field, "pin_path") == 0) {
        PyObject *b = NULL;
        if (value != Py_None && !PyUnicode_FSConverter(value, &b))
            return NULL;
        r = bpf_map__set_pin_path(map, b ? PyBytes_AS_STRING(b) : NULL);
        Py_XDECREF(b);
        goto done;
    }
    if (strcmp(field, "autocreate") == 0) {
        int t = PyObject_IsTrue(value);
        if (t < 0)
            return NULL;
        r = bpf_map__set_autocreate(map, t);
        goto done;
    }
    v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (strcmp(field, "map_extra") != 0 && v > UINT32_MAX)
        return PyErr_Format(PyExc_OverflowError, "%s must fit in 32 bits", field);
    if (strcmp(field, "type") == 0)
        r = bpf_map__set_type(map, (enum bpf_map_type)v);
    else if (strcmp(field, "key_size") == 0)
        r = bpf_map__set_key_size(map, (__u32)v);
    else if (strcmp(field, "value_size") == 0)
        r = bpf_map__set_value_size(map, (__u32)v);
    else if (strcmp(field, "max_entries") == 0)
        r = bpf_map__set_max_entries(map, (__u32)v);
    else if (strcmp(field, "flags") == 0)
        r = bpf_map__set_map_flags(map, (__u32)v);
    else if (strcmp(field, "numa_node") == 0)
        r = bpf_map__set_numa_node(map, (__u32)v);
    else if (strcmp(field, "ifindex") == 0)
        r = bpf_map__set_ifindex(map, (__u32)v);
    else if (strcmp(field, "map_extra") == 0)
        r = bpf_map__set_map_extra(map, (__u64)v);
    else if (strcmp(field, "inner_map_fd") == 0)
        r = bpf_map__set_inner_map_fd(map, (int)v);
    else
        return PyErr_Format(PyExc_ValueError, "unknown map field %s", field);
done:
    if (r < 0)
        return pybpf_object_set_err(op, -r, "map", field, name);
    Py_RETURN_NONE;
}

static PyObject *
Object_map_reuse_fd(PyObject *op, PyObject *args)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    PyObject *name;
    struct bpf_map *map;
    int fd, r;

    if (!PyArg_ParseTuple(args, "Ui:map_reuse_fd", &name, &fd))
        return NULL;
    if (!(map = pybpf_object_map(self, name)))
        return NULL;
    if (self->loaded)
        return pybpf_err_with(PYBPF_STATE(op), NULL, EBUSY, "reuse map fd", name,
                              "the object is already loaded");
    /* bpf_map__reuse_fd dups the fd and reads the map's info (a syscall).  inflight keeps a
     * close() from another thread from freeing the object meanwhile. */
    self->inflight++;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_map__reuse_fd(map, fd);
    Py_END_ALLOW_THREADS
    pybpf_object_leave(self);
    if (r < 0)
        return pybpf_err(PYBPF_STATE(op), -r, "reuse map fd", name);
    Py_RETURN_NONE;
}

/* ---- program specs ---------------------------------------------------------------------- */

static PyObject *
Object_program_spec(PyObject *op, PyObject *name)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    struct bpf_program *prog = pybpf_object_program(self, name);

    if (!prog)
        return NULL;
    return Py_BuildValue("{s:s,s:s,s:I,s:I,s:O,s:O,s:n,s:I,s:I,s:i}", "name",
                         bpf_program__name(prog), "section", bpf_program__section_name(prog),
                         "type", (unsigned)bpf_program__type(prog), "expected_attach_type",
                         (unsigned)bpf_program__expected_attach_type(prog), "autoload",
                         bpf_program__autoload(prog) ? Py_True : Py_False, "autoattach",
                         bpf_program__autoattach(prog) ? Py_True : Py_False, "insn_cnt",
                         (Py_ssize_t)bpf_program__insn_cnt(prog), "flags",
                         bpf_program__flags(prog), "log_level", bpf_program__log_level(prog),
                         "fd", bpf_program__fd(prog));
}

static PyObject *
Object_program_set(PyObject *op, PyObject *args)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    PyObject *name, *value;
    const char *field;
    struct bpf_program *prog;
    int r;

    if (!PyArg_ParseTuple(args, "UsO:program_set", &name, &field, &value))
        return NULL;
    if (!(prog = pybpf_object_program(self, name)))
        return NULL;
    if (strcmp(field, "attach_target") == 0) {
        /* value: (target program fd or 0 for the kernel, function name or None) */
        int tfd;
        const char *func = NULL;
        if (!PyArg_ParseTuple(value, "iz:attach_target", &tfd, &func))
            return NULL;
        self->inflight++; /* close() from another thread waits for us (see load) */
        Py_BEGIN_ALLOW_THREADS /* may load kernel BTF / query the target program */
        r = bpf_program__set_attach_target(prog, tfd, func);
        Py_END_ALLOW_THREADS
        pybpf_object_leave(self);
    } else if (strcmp(field, "autoload") == 0 || strcmp(field, "autoattach") == 0) {
        int t = PyObject_IsTrue(value);
        if (t < 0)
            return NULL;
        if (field[4] == 'l') {
            r = bpf_program__set_autoload(prog, t);
        } else {
            bpf_program__set_autoattach(prog, t);
            r = 0;
        }
    } else {
        unsigned long v = PyLong_AsUnsignedLong(value);
        if (v == (unsigned long)-1 && PyErr_Occurred())
            return NULL;
        if (v > UINT32_MAX)
            return PyErr_Format(PyExc_OverflowError, "%s must fit in 32 bits", field);
        if (strcmp(field, "type") == 0)
            r = bpf_program__set_type(prog, (enum bpf_prog_type)v);
        else if (strcmp(field, "expected_attach_type") == 0)
            r = bpf_program__set_expected_attach_type(prog, (enum bpf_attach_type)v);
        else if (strcmp(field, "flags") == 0)
            r = bpf_program__set_flags(prog, (__u32)v);
        else if (strcmp(field, "log_level") == 0)
            r = bpf_program__set_log_level(prog, (__u32)v);
        else
            return PyErr_Format(PyExc_ValueError, "unknown program field %s", field);
    }
    if (r < 0)
        return pybpf_object_set_err(op, -r, "program", field, name);
    Py_RETURN_NONE;
}

/* ---- load ------------------------------------------------------------------------------- */

static int
pybpf_is_insn_line(const char *s)
{
    /* verifier instruction lines look like "12: (85) call bpf_map_lookup_elem#1" */
    if (*s < '0' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return s[0] == ':' && s[1] == ' ' && s[2] == '(';
}

static int
pybpf_is_trailer_line(const char *s)
{
    /* statistics the verifier prints after the verdict */
    return !*s || strncmp(s, "processed ", 10) == 0 || strncmp(s, "verification time", 17) == 0 ||
           strncmp(s, "stack depth", 11) == 0 || strncmp(s, "-- END", 6) == 0;
}

/* Raise VerifierError for a program whose load failed with a log: the message names the
 * program and quotes the verifier's reason and the instruction it stopped at; .log holds all
 * lines and .program the program's name. */
static PyObject *
pybpf_object_verifier_error(PyBPF_Object *self, int err, struct bpf_program *prog,
                            const char *log)
{
    pybpf_state *st = PYBPF_STATE(self);
    PyObject *text, *lines, *exc_t, *exc_v, *exc_tb, *pname;
    const char *reason = NULL, *insn = NULL;
    char op[160], *hint = NULL;
    Py_ssize_t i, n;

    text = PyUnicode_DecodeUTF8(log, strlen(log), "replace");
    if (!text)
        return NULL;
    lines = PyUnicode_Splitlines(text, 0);
    Py_DECREF(text);
    if (!lines)
        return NULL;
    n = PyList_GET_SIZE(lines);
    for (i = n - 1; i >= 0; i--) {
        const char *s = PyUnicode_AsUTF8(PyList_GET_ITEM(lines, i));
        if (!s)
            goto fail;
        if (!reason) {
            if (!pybpf_is_trailer_line(s))
                reason = s;
        } else if (pybpf_is_insn_line(s)) {
            insn = s;
            break;
        }
    }
    if (reason) {
        size_t len = strlen(reason) + (insn ? strlen(insn) : 0) + 32;
        hint = PyMem_Malloc(len);
        if (!hint) {
            PyErr_NoMemory();
            goto fail;
        }
        if (insn)
            snprintf(hint, len, "verifier: %s, at %s", reason, insn);
        else
            snprintf(hint, len, "verifier: %s", reason);
    }
    snprintf(op, sizeof(op), "load program '%s' (section '%s')", bpf_program__name(prog),
             bpf_program__section_name(prog));
    pybpf_err_with(st, st->VerifierError, err, op, NULL, hint);
    PyMem_Free(hint);
    PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
    PyErr_NormalizeException(&exc_t, &exc_v, &exc_tb);
    pname = PyUnicode_FromString(bpf_program__name(prog));
    if (!pname || PyObject_SetAttrString(exc_v, "log", lines) < 0 ||
        PyObject_SetAttrString(exc_v, "program", pname) < 0) {
        Py_XDECREF(pname);
        Py_XDECREF(exc_t);
        Py_XDECREF(exc_v);
        Py_XDECREF(exc_tb);
        goto fail;
    }
    Py_DECREF(pname);
    PyErr_Restore(exc_t, exc_v, exc_tb);
fail:
    Py_DECREF(lines);
    return NULL;
}

static PyObject *
Object_load(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"log_level", "log_size", NULL};
    PyBPF_Object *self = (PyBPF_Object *)op;
    unsigned int log_level = 0;
    Py_ssize_t log_size = PYBPF_OBJECT_DEFAULT_LOG_SIZE;
    struct bpf_program *prog, *failed = NULL;
    struct bpf_object *obj;
    char *log = NULL;
    int r;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|In:load", kwlist, &log_level, &log_size))
        return NULL;
    if (pybpf_object_check(self) < 0)
        return NULL;
    if (self->loaded || self->load_failed)
        return pybpf_err_with(PYBPF_STATE(op), NULL, EBUSY, "load object", op,
                              self->loaded ? "already loaded"
                                           : "a failed load cannot be retried: open it again");
    if (log_size < 128 || log_size > UINT32_MAX)
        return PyErr_Format(PyExc_ValueError, "log_size must be in [128, 2**32), got %zd",
                            log_size);
    log = PyMem_RawMalloc((size_t)log_size);
    if (!log)
        return PyErr_NoMemory();
    log[0] = '\0';
    obj = self->obj;
    /* One buffer for every program: libbpf loads them in order and stops at the first
     * failure, so after a failed load it holds that program's log (libbpf retries a failed
     * load with log_level 1 to fill it). */
    bpf_object__for_each_program(prog, obj) {
        bpf_program__set_log_buf(prog, log, (size_t)log_size);
        if (log_level)
            bpf_program__set_log_level(prog, log_level);
    }
    self->inflight++; /* other calls are refused and close() is deferred meanwhile */
    Py_BEGIN_ALLOW_THREADS
    r = bpf_object__load(obj);
    Py_END_ALLOW_THREADS
    self->inflight--;
    bpf_object__for_each_program(prog, obj) {
        bpf_program__set_log_buf(prog, NULL, 0);
        if (r < 0 && !failed && bpf_program__autoload(prog) && bpf_program__fd(prog) < 0)
            failed = prog;
    }
    if (r == 0) {
        self->loaded = 1;
    } else {
        self->load_failed = 1;
    }
    if (r < 0) {
        if (failed && log[0])
            pybpf_object_verifier_error(self, -r, failed, log);
        else
            pybpf_err(PYBPF_STATE(op), -r, "load object", op);
    }
    PyMem_RawFree(log);
    if (self->closing)
        pybpf_object_release(self); /* close() was called while we loaded */
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- live fds --------------------------------------------------------------------------- */

static PyObject *
Object_map_fd(PyObject *op, PyObject *name)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    struct bpf_map *map = pybpf_object_map(self, name);
    int fd;

    if (!map)
        return NULL;
    fd = bpf_map__fd(map);
    /* after load libbpf reports a placeholder fd for maps it did not create */
    if (fd < 0 || !bpf_map__autocreate(map))
        return PyErr_Format(PyExc_ValueError, "map %R has no fd (object not loaded, or the map "
                            "was not created)", name);
    return PyLong_FromLong(fd);
}

static PyObject *
Object_program_fd(PyObject *op, PyObject *name)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    struct bpf_program *prog = pybpf_object_program(self, name);
    int fd;

    if (!prog)
        return NULL;
    fd = bpf_program__fd(prog);
    if (fd < 0)
        return PyErr_Format(PyExc_ValueError, "program %R has no fd (object not loaded, or "
                            "its autoload is off)", name);
    return PyLong_FromLong(fd);
}

/* ---- global variables ------------------------------------------------------------------- */

/* Each variable of each DATASEC that has a backing map:
 * (name, section, offset, size, kind, signed), kind "int" for integers and enums of 1, 2, 4
 * or 8 bytes (after typedefs and qualifiers), "bytes" otherwise. */
static PyObject *
Object_variables(PyObject *op, PyObject *unused)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    const struct btf *btf;
    PyObject *res;
    __u32 id, n;

    if (pybpf_object_check(self) < 0)
        return NULL;
    if (!(res = PyList_New(0)))
        return NULL;
    btf = bpf_object__btf(self->obj);
    if (!btf)
        return res; /* no BTF (built without -g): no named globals */
    n = btf__type_cnt(btf);
    for (id = 1; id < n; id++) {
        const struct btf_type *t = btf__type_by_id(btf, id);
        const struct btf_var_secinfo *vsi;
        const char *sec;
        int i, vlen;

        if (!btf_is_datasec(t))
            continue;
        sec = btf__name_by_offset(btf, t->name_off);
        if (!sec || !bpf_object__find_map_by_name(self->obj, sec))
            continue; /* .ksyms and other sections without a map */
        vsi = btf_var_secinfos(t);
        vlen = btf_vlen(t);
        for (i = 0; i < vlen; i++, vsi++) {
            const struct btf_type *var = btf__type_by_id(btf, vsi->type), *vt;
            const char *kind = "bytes";
            int is_signed = 0;
            PyObject *item;

            if (!var || !btf_is_var(var))
                continue;
            vt = btf__type_by_id(btf, var->type);
            while (vt && (btf_is_mod(vt) || btf_is_typedef(vt)))
                vt = btf__type_by_id(btf, vt->type);
            if (vt && (vsi->size == 1 || vsi->size == 2 || vsi->size == 4 || vsi->size == 8)) {
                if (btf_is_int(vt)) {
                    kind = "int";
                    is_signed = (btf_int_encoding(vt) & BTF_INT_SIGNED) != 0;
                } else if (btf_is_any_enum(vt)) {
                    kind = "int";
                    is_signed = btf_kflag(vt);
                }
            }
            item = Py_BuildValue("(ssIIsO)", btf__name_by_offset(btf, var->name_off), sec,
                                 vsi->offset, vsi->size, kind, is_signed ? Py_True : Py_False);
            if (!item || PyList_Append(res, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(res);
                return NULL;
            }
            Py_DECREF(item);
        }
    }
    return res;
}

/* The data of a section map: libbpf's copy of the initial value before load, the map's own
 * mmap after it (for .data/.bss/.rodata that is the live memory the programs use). */
static char *
pybpf_object_section(PyBPF_Object *self, PyObject *section, Py_ssize_t off, Py_ssize_t len,
                     int write)
{
    struct bpf_map *map = pybpf_object_map(self, section);
    size_t size = 0;
    char *data;

    if (!map)
        return NULL;
    if (!bpf_map__is_internal(map)) {
        PyErr_Format(PyExc_ValueError, "map %R is not a data section", section);
        return NULL;
    }
    data = bpf_map__initial_value(map, &size);
    if (!data) {
        PyErr_Format(PyExc_ValueError, "section %R has no memory mapping (not created, or the "
                     "kernel cannot mmap it)", section);
        return NULL;
    }
    if (off < 0 || len < 0 || (size_t)off > size || (size_t)len > size - (size_t)off) {
        PyErr_Format(PyExc_ValueError, "range [%zd, %zd) is outside section %R of %zu bytes",
                     off, off + len, section, size);
        return NULL;
    }
    /* After load, read-only sections (.rodata, BPF_F_RDONLY_PROG) are mapped PROT_READ:
     * writing would fault, so refuse here. */
    if (write && self->loaded && (bpf_map__map_flags(map) & BPF_F_RDONLY_PROG)) {
        PyErr_Format(PyExc_ValueError, "section %R is read-only once the object is loaded",
                     section);
        return NULL;
    }
    return data + off;
}

static PyObject *
Object_global_read(PyObject *op, PyObject *args)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    PyObject *section;
    Py_ssize_t off, len;
    char *p;

    if (!PyArg_ParseTuple(args, "Unn:global_read", &section, &off, &len))
        return NULL;
    if (!(p = pybpf_object_section(self, section, off, len, 0)))
        return NULL;
    /* A plain copy under the GIL: the mapping stays valid while we hold it (close needs the
     * GIL). Programs may write concurrently; a variable wider than 8 bytes may tear. */
    return PyBytes_FromStringAndSize(p, len);
}

static PyObject *
Object_global_write(PyObject *op, PyObject *args)
{
    PyBPF_Object *self = (PyBPF_Object *)op;
    PyObject *section, *data;
    Py_ssize_t off;
    Py_buffer view;
    char *p;

    if (!PyArg_ParseTuple(args, "UnO:global_write", &section, &off, &data))
        return NULL;
    if (pybpf_get_buffer(data, &view, -1, "value", 0) < 0)
        return NULL;
    p = pybpf_object_section(self, section, off, view.len, 1);
    if (p)
        memcpy(p, view.buf, view.len);
    PyBuffer_Release(&view);
    if (!p)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- for link.c ------------------------------------------------------------------------- */

/* The libbpf program `name` of an open Object, for bpf_program__attach() & co. in link.c
 * (which is #included after this file).  Borrowed: valid while the Object stays open, so the
 * caller keeps a reference to the Object (Programs made by bpf.Object carry it as `_object`,
 * and their libbpf name as `_object_name`).  NULL with an exception set otherwise. */
static __attribute__((unused)) struct bpf_program *
pybpf_object_get_program(pybpf_state *st, PyObject *op, const char *name)
{
    PyTypeObject *tp = st->Object_Type;
    PyBPF_Object *self = (PyBPF_Object *)op;
    struct bpf_program *prog;

    if (!tp || !PyObject_TypeCheck(op, tp)) {
        PyErr_Format(PyExc_TypeError, "expected a bpf.Object, not %.100s", Py_TYPE(op)->tp_name);
        return NULL;
    }
    if (pybpf_object_check(self) < 0)
        return NULL;
    prog = bpf_object__find_program_by_name(self->obj, name);
    if (!prog)
        PyErr_Format(PyExc_KeyError, "no program %s in %R", name, op);
    else if (bpf_program__fd(prog) < 0) {
        PyErr_Format(PyExc_ValueError, "program %s of %R is not loaded", name, op);
        prog = NULL;
    }
    return prog;
}

/* ---- type ------------------------------------------------------------------------------- */

static PyMethodDef Object_methods[] = {
    {"open", (PyCFunction)(void (*)(void))Object_open, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("open(source, name=None, pin_root=None, btf_custom_path=None, kconfig=None)\n"
               "Open an ELF object from a path or a bytes-like image, without loading it.")},
    {"close", Object_close, METH_NOARGS,
     PyDoc_STR("Free the libbpf object and close the fds it owns (idempotent).")},
    {"__enter__", Object_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))pybpf_fd_exit_ctx, METH_FASTCALL, NULL},
    {"load", (PyCFunction)(void (*)(void))Object_load, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("load(log_level=0, log_size=1 MiB)\nCreate the maps and load the programs "
               "(GIL released). VerifierError with .log when a program is refused.")},
    {"map_names", Object_map_names, METH_NOARGS,
     PyDoc_STR("Return the names of the object's maps, internal ones included.")},
    {"program_names", Object_program_names, METH_NOARGS,
     PyDoc_STR("Return the names of the object's programs.")},
    {"map_spec", Object_map_spec, METH_O, PyDoc_STR("Return a map's attributes as a dict.")},
    {"map_set", Object_map_set, METH_VARARGS,
     PyDoc_STR("map_set(name, field, value): change a map attribute before load.")},
    {"map_reuse_fd", Object_map_reuse_fd, METH_VARARGS,
     PyDoc_STR("map_reuse_fd(name, fd): use an existing map (dup of fd) instead of creating "
               "one.")},
    {"program_spec", Object_program_spec, METH_O,
     PyDoc_STR("Return a program's attributes as a dict.")},
    {"program_set", Object_program_set, METH_VARARGS,
     PyDoc_STR("program_set(name, field, value): change a program attribute before load.")},
    {"map_fd", Object_map_fd, METH_O,
     PyDoc_STR("Return libbpf's fd of a created map (borrowed: dup it to keep it).")},
    {"program_fd", Object_program_fd, METH_O,
     PyDoc_STR("Return libbpf's fd of a loaded program (borrowed: dup it to keep it).")},
    {"variables", Object_variables, METH_NOARGS,
     PyDoc_STR("Return (name, section, offset, size, kind, signed) for each global variable "
               "found in the object's BTF.")},
    {"global_read", Object_global_read, METH_VARARGS,
     PyDoc_STR("global_read(section, offset, size) -> bytes from a data section's memory.")},
    {"global_write", Object_global_write, METH_VARARGS,
     PyDoc_STR("global_write(section, offset, data): copy data into a data section's "
               "memory.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Object_getsets[] = {
    {"closed", Object_get_closed, NULL, PyDoc_STR("True once close() was called."), NULL},
    {"loaded", Object_get_loaded, NULL, PyDoc_STR("True once load() succeeded."), NULL},
    {"name", Object_get_name, NULL, PyDoc_STR("The object's name."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Object_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PyBPF_Object, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Object_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("An ELF object opened through libbpf (C layer of bpf.Object).")},
    {Py_tp_methods, Object_methods},
    {Py_tp_getset, Object_getsets},
    {Py_tp_members, Object_members},
    {Py_tp_repr, Object_repr},
    {Py_tp_finalize, Object_finalize},
    {Py_tp_traverse, pybpf_fd_traverse},
    {Py_tp_dealloc, Object_dealloc},
    {0, NULL},
};

static PyType_Spec Object_spec = {
    .name = "bpf._bpf.Object",
    .basicsize = sizeof(PyBPF_Object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Object_slots,
};

static int
pybpf_object_init(PyObject *m, pybpf_state *st)
{
    return pybpf_add_type(m, &Object_spec, &st->Object_Type, NULL);
}
