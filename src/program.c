/* Program: raw loading, adoption (fd, pin, id), kernel info, test runs; and the by-id walks
 * that bpf.introspect builds on.
 *
 * Policy lives in bpf/programs.py: default sizes for test runs, the verifier-log retry loop
 * and the VerifierError message.  This file takes buffers and ints, releases the GIL around
 * each syscall and reports errors through pybpf_err*.
 */

/* A loaded program.  Beyond the fd base it caches what the kernel fixes for the program's
 * lifetime (read once from BPF_OBJ_GET_INFO_BY_FD at construction), so that type checks and
 * reprs need no syscall.  Everything that can change (run counts, bound maps) is read fresh
 * by info(). */
typedef struct {
    PyBPF_FdObject base;
    uint32_t prog_type;            /* enum bpf_prog_type */
    uint32_t id;                   /* kernel-wide program id */
    char name[BPF_OBJ_NAME_LEN];   /* NUL-terminated, as the kernel stores it */
    uint8_t tag[BPF_TAG_SIZE];     /* hash of the instructions (before map fds are resolved) */
} PyBPF_ProgramObject;

#define PYBPF_PROG(o) ((PyBPF_ProgramObject *)(o))

/* ---- helpers shared with object.c and introspection -------------------------------------- */

/* Program.from_fd/from_pin refuse other fds: ValueError naming what the fd is, or OSError
 * EBADF if it is not open (see pybpf_fd_is).  A pybpf_fd_check_fn. */
static int
pybpf_prog_check_fd(PyTypeObject *cls, int fd)
{
    char seen[128] = "";
    int r = pybpf_fd_is(fd, "bpf-prog", seen, sizeof(seen));

    if (r < 0) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (r == 0) {
        PyErr_Format(PyExc_ValueError, "fd %d is not a BPF program (it is %s)", fd, seen);
        return -1;
    }
    return 0;
}

/* Read a program's info, with its map ids.  Returns 0 or a positive errno (no exception). */
static int
pybpf_prog_get_info(int fd, struct bpf_prog_info *info, uint32_t **map_ids, uint32_t *nr_ids)
{
    uint32_t len = sizeof(*info), n, *ids = NULL;
    int r;

    memset(info, 0, sizeof(*info));
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_get_info_by_fd(fd, info, &len);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_libbpf_errno(r);
    *nr_ids = 0;
    if (map_ids)
        *map_ids = NULL;
    n = info->nr_map_ids;
    if (!map_ids || n == 0)
        return 0;
    ids = PyMem_Calloc(n, sizeof(uint32_t));
    if (!ids)
        return ENOMEM;
    /* A second call fills the ids; everything else in info is read again with it.
     * bpf_prog_bind_map() may add maps in between, so keep only what fits. */
    memset(info, 0, sizeof(*info));
    info->nr_map_ids = n;
    info->map_ids = (uint64_t)(uintptr_t)ids;
    len = sizeof(*info);
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_get_info_by_fd(fd, info, &len);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        PyMem_Free(ids);
        return pybpf_libbpf_errno(r);
    }
    *nr_ids = info->nr_map_ids < n ? info->nr_map_ids : n;
    info->map_ids = 0;
    *map_ids = ids;
    return 0;
}

/* The kernel's bpf_prog_info as a dict (scalars, name, tag bytes, map_ids list). */
static PyObject *
pybpf_prog_info_dict(const struct bpf_prog_info *info, const uint32_t *ids, uint32_t nr)
{
    PyObject *d = PyDict_New();

    if (!d)
        return NULL;
    if (pybpf_dict_set(d, "map_ids", pybpf_uint_list(ids, nr, 4)) < 0 ||
        PYBPF_SET_U64(d, "type", info->type) < 0 || PYBPF_SET_U64(d, "id", info->id) < 0 ||
        pybpf_dict_set(d, "tag", PyBytes_FromStringAndSize((const char *)info->tag,
                                                           BPF_TAG_SIZE)) < 0 ||
        pybpf_dict_set(d, "name", pybpf_decode_name(info->name, sizeof(info->name))) < 0 ||
        PYBPF_SET_U64(d, "jited_prog_len", info->jited_prog_len) < 0 ||
        PYBPF_SET_U64(d, "xlated_prog_len", info->xlated_prog_len) < 0 ||
        PYBPF_SET_U64(d, "load_time", info->load_time) < 0 ||
        PYBPF_SET_U64(d, "created_by_uid", info->created_by_uid) < 0 ||
        PYBPF_SET_U64(d, "ifindex", info->ifindex) < 0 ||
        pybpf_dict_set(d, "gpl_compatible", PyBool_FromLong(info->gpl_compatible)) < 0 ||
        PYBPF_SET_U64(d, "netns_dev", info->netns_dev) < 0 ||
        PYBPF_SET_U64(d, "netns_ino", info->netns_ino) < 0 ||
        PYBPF_SET_U64(d, "nr_jited_ksyms", info->nr_jited_ksyms) < 0 ||
        PYBPF_SET_U64(d, "btf_id", info->btf_id) < 0 ||
        PYBPF_SET_U64(d, "nr_func_info", info->nr_func_info) < 0 ||
        PYBPF_SET_U64(d, "nr_line_info", info->nr_line_info) < 0 ||
        PYBPF_SET_U64(d, "run_time_ns", info->run_time_ns) < 0 ||
        PYBPF_SET_U64(d, "run_cnt", info->run_cnt) < 0 ||
        PYBPF_SET_U64(d, "recursion_misses", info->recursion_misses) < 0 ||
        PYBPF_SET_U64(d, "verified_insns", info->verified_insns) < 0 ||
        PYBPF_SET_U64(d, "attach_btf_obj_id", info->attach_btf_obj_id) < 0 ||
        PYBPF_SET_U64(d, "attach_btf_id", info->attach_btf_id) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* Wrap an fd we own (>= 1) in a new instance of cls, reading its info.  On failure the fd is
 * closed.  object.c uses this for the programs of a loaded bpf_object (after dup()). */
static PyObject *
pybpf_program_new(PyTypeObject *cls, int fd)
{
    pybpf_state *st = pybpf_state_from_type(cls);
    struct bpf_prog_info info;
    PyBPF_ProgramObject *self;
    uint32_t nr;
    int err;

    err = pybpf_prog_get_info(fd, &info, NULL, &nr);
    if (err) {
        close(fd);
        return pybpf_err(st, err, "program info", NULL);
    }
    self = (PyBPF_ProgramObject *)cls->tp_alloc(cls, 0);
    if (!self) {
        close(fd);
        return NULL;
    }
    pybpf_fd_init(&self->base, fd, 1, "program");
    self->prog_type = info.type;
    self->id = info.id;
    memcpy(self->name, info.name, sizeof(self->name));
    self->name[sizeof(self->name) - 1] = '\0';
    memcpy(self->tag, info.tag, sizeof(self->tag));
    return (PyObject *)self;
}

/* ---- constructors ---------------------------------------------------------------------- */

/* Take a buffer of packed fixed-size kernel records (func_info, line_info): its length must
 * be a whole number of records, and the count must fit the u32 the kernel takes. */
static int
pybpf_get_records(PyObject *obj, Py_buffer *view, size_t recsize, const char *what,
                  const char *ctype, uint32_t *count)
{
    if (pybpf_get_buffer(obj, view, -1, what, 0) < 0)
        return -1;
    if (view->len % recsize != 0 || view->len / recsize > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s must be packed %s records (%zu bytes each), "
                     "got %zd bytes", what, ctype, recsize, view->len);
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    *count = (uint32_t)(view->len / recsize);
    return 0;
}

static PyObject *
Program_load(PyObject *cls, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"prog_type", "insns", "license", "name", "expected_attach_type",
                             "attach_btf_id", "attach_prog_fd", "attach_btf_obj_fd",
                             "prog_flags", "prog_ifindex", "kern_version", "log_level",
                             "log_buf", "fd_array", "prog_btf_fd", "func_info", "line_info",
                             NULL};
    pybpf_state *st = pybpf_state_from_type((PyTypeObject *)cls);
    unsigned int prog_type, eat = 0, btf_id = 0, aprog = 0, abtf = 0, pflags = 0, ifidx = 0;
    unsigned int kver = 0, log_level = 0, prog_btf_fd = 0;
    const char *license = "GPL", *name = NULL;
    PyObject *insns_obj, *log_obj = Py_None, *fda_obj = Py_None, *res, *exc, *v;
    PyObject *fi_obj = Py_None, *li_obj = Py_None;
    Py_buffer insns, logb = {0}, fda = {0}, fib = {0}, lib = {0};
    LIBBPF_OPTS(bpf_prog_load_opts, opts);
    int fd, err;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "IO|s$zIIIIIIIIOOIOO:_load", kwlist,
                                     &prog_type, &insns_obj, &license, &name, &eat, &btf_id,
                                     &aprog, &abtf, &pflags, &ifidx, &kver, &log_level, &log_obj,
                                     &fda_obj, &prog_btf_fd, &fi_obj, &li_obj))
        return NULL;
    if (pybpf_get_buffer(insns_obj, &insns, -1, "insns", 0) < 0)
        return NULL;
    if (insns.len == 0 || insns.len % 8 != 0) {
        PyErr_Format(PyExc_ValueError,
                     "insns must be a non-empty multiple of 8 bytes (struct bpf_insn), got %zd",
                     insns.len);
        goto fail;
    }
    if (log_obj != Py_None) {
        /* The log buffer is the caller's bytearray: the kernel writes into it while the GIL
         * is released, and the buffer export keeps it from being resized meanwhile. */
        if (pybpf_get_buffer(log_obj, &logb, -1, "log_buf", 1) < 0)
            goto fail;
        if (logb.len < 128 || logb.len > UINT32_MAX) {
            PyErr_Format(PyExc_ValueError, "log_buf must hold 128 bytes to 4 GiB, got %zd",
                         logb.len);
            goto fail;
        }
        opts.log_buf = logb.buf;
        opts.log_size = (uint32_t)logb.len;
    }
    if (fda_obj != Py_None) {
        if (pybpf_get_buffer(fda_obj, &fda, -1, "fd_array", 0) < 0)
            goto fail;
        if (fda.len % sizeof(int) != 0) {
            PyErr_Format(PyExc_ValueError, "fd_array must be an array of C ints, got %zd bytes",
                         fda.len);
            goto fail;
        }
        opts.fd_array = fda.buf;
    }
    /* BTF func_info / line_info: packed struct bpf_func_info (8 bytes) / bpf_line_info (16)
     * records, built and checked in bpf/programs.py; the kernel checks them against
     * prog_btf_fd and the subprogram layout. */
    if (fi_obj != Py_None) {
        if (pybpf_get_records(fi_obj, &fib, sizeof(struct bpf_func_info), "func_info",
                              "struct bpf_func_info", &opts.func_info_cnt) < 0)
            goto fail;
        opts.func_info = fib.buf;
        opts.func_info_rec_size = sizeof(struct bpf_func_info);
    }
    if (li_obj != Py_None) {
        if (pybpf_get_records(li_obj, &lib, sizeof(struct bpf_line_info), "line_info",
                              "struct bpf_line_info", &opts.line_info_cnt) < 0)
            goto fail;
        opts.line_info = lib.buf;
        opts.line_info_rec_size = sizeof(struct bpf_line_info);
    }
    opts.expected_attach_type = eat;
    opts.attach_btf_id = btf_id;
    opts.attach_prog_fd = aprog;
    opts.attach_btf_obj_fd = abtf;
    opts.prog_flags = pflags;
    opts.prog_ifindex = ifidx;
    opts.kern_version = kver;
    /* With a log buffer and log_level 0, libbpf loads once without a log and, on failure,
     * again with log_level 1: the fast path pays nothing for the diagnostics. */
    opts.log_level = log_level;
    opts.prog_btf_fd = prog_btf_fd;

    Py_BEGIN_ALLOW_THREADS
    fd = bpf_prog_load((enum bpf_prog_type)prog_type, name, license,
                       (const struct bpf_insn *)insns.buf, (size_t)(insns.len / 8), &opts);
    Py_END_ALLOW_THREADS
    err = fd < 0 ? pybpf_libbpf_errno(fd) : 0;
    PyBuffer_Release(&insns);
    if (logb.obj)
        PyBuffer_Release(&logb);
    if (fda.obj)
        PyBuffer_Release(&fda);
    if (fib.obj)
        PyBuffer_Release(&fib);
    if (lib.obj)
        PyBuffer_Release(&lib);
    if (err) {
        pybpf_err(st, err, "program load", NULL);
        /* Tell the Python layer how big the log needed to be (kernels >= 6.4 report it),
         * so a log truncated with ENOSPC is retried once with the right size. */
        if (opts.log_buf) {
            PyObject *type, *tb;
            PyErr_Fetch(&type, &exc, &tb);
            PyErr_NormalizeException(&type, &exc, &tb);
            v = PyLong_FromUnsignedLong(opts.log_true_size);
            if (!v || PyObject_SetAttrString(exc, "log_true_size", v) < 0)
                PyErr_Clear();
            Py_XDECREF(v);
            PyErr_Restore(type, exc, tb);
        }
        return NULL;
    }
    fd = pybpf_adopt_fd(fd, 1, "program");
    if (fd < 0)
        return NULL;
    res = pybpf_program_new((PyTypeObject *)cls, fd);
    return res;
fail:
    PyBuffer_Release(&insns);
    if (logb.obj)
        PyBuffer_Release(&logb);
    if (fda.obj)
        PyBuffer_Release(&fda);
    if (fib.obj)
        PyBuffer_Release(&fib);
    if (lib.obj)
        PyBuffer_Release(&lib);
    return NULL;
}

static PyObject *
Program_from_fd(PyObject *cls, PyObject *args, PyObject *kw)
{
    int fd = pybpf_fd_from_fd_args((PyTypeObject *)cls, args, kw, "program",
                                   pybpf_prog_check_fd);

    if (fd < 0)
        return NULL;
    return pybpf_program_new((PyTypeObject *)cls, fd);
}

static PyObject *
Program_from_pin(PyObject *cls, PyObject *arg)
{
    int fd = pybpf_fd_from_pin(pybpf_state_from_type((PyTypeObject *)cls), arg, 0, "program");

    if (fd < 0)
        return NULL;
    if (pybpf_prog_check_fd((PyTypeObject *)cls, fd) < 0) {
        close(fd);
        return NULL;
    }
    return pybpf_program_new((PyTypeObject *)cls, fd);
}

static PyObject *
Program_from_id(PyObject *cls, PyObject *arg)
{
    uint32_t id;
    int fd;

    if (pybpf_id_arg(arg, "program", &id) < 0)
        return NULL;
    fd = pybpf_fd_by_id(pybpf_state_from_type((PyTypeObject *)cls), bpf_prog_get_fd_by_id_opts,
                        id, 0, "program");
    if (fd < 0)
        return NULL;
    return pybpf_program_new((PyTypeObject *)cls, fd);
}

/* ---- methods ----------------------------------------------------------------------------- */

static PyObject *
Program_info(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    struct bpf_prog_info info;
    uint32_t *ids = NULL, nr = 0;
    PyObject *res;
    int fd = pybpf_enter(o), err;

    if (fd < 0)
        return NULL;
    err = pybpf_prog_get_info(fd, &info, &ids, &nr);
    pybpf_leave(o);
    if (err)
        return pybpf_err(PYBPF_STATE(self), err, "program info", self);
    res = pybpf_prog_info_dict(&info, ids, nr);
    PyMem_Free(ids);
    return res;
}

/* Fetch the translated (xlated) or JITed image.  Two info calls: the first gives the size. */
static PyObject *
pybpf_prog_image(PyObject *self, int jited)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    struct bpf_prog_info info;
    uint32_t len = sizeof(info), size;
    char *buf = NULL;
    PyObject *res = NULL;
    int fd = pybpf_enter(o), r;

    if (fd < 0)
        return NULL;
    memset(&info, 0, sizeof(info));
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_get_info_by_fd(fd, &info, &len);
    Py_END_ALLOW_THREADS
    if (r < 0)
        goto err;
    size = jited ? info.jited_prog_len : info.xlated_prog_len;
    if (size == 0) {
        /* No JIT image (JIT off, or offloaded), or the kernel hides xlated code from us. */
        res = PyBytes_FromStringAndSize(NULL, 0);
        goto out;
    }
    buf = PyMem_Malloc(size);
    if (!buf) {
        PyErr_NoMemory();
        goto out;
    }
    memset(&info, 0, sizeof(info));
    if (jited) {
        info.jited_prog_len = size;
        info.jited_prog_insns = (uint64_t)(uintptr_t)buf;
    } else {
        info.xlated_prog_len = size;
        info.xlated_prog_insns = (uint64_t)(uintptr_t)buf;
    }
    len = sizeof(info);
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_get_info_by_fd(fd, &info, &len);
    Py_END_ALLOW_THREADS
    if (r < 0)
        goto err;
    if (jited ? info.jited_prog_insns == 0 : info.xlated_prog_insns == 0) {
        /* The kernel zeroes the pointer when it refuses the dump (kptr_restrict, or
         * bpf_dump_raw_ok() false without CAP_SYSLOG-like rights). */
        pybpf_err_with(PYBPF_STATE(self), NULL, EPERM, jited ? "program jited" : "program xlated",
                       self, "the kernel refused to dump the image (kernel.kptr_restrict?)");
        goto out;
    }
    {
        uint32_t got = jited ? info.jited_prog_len : info.xlated_prog_len;
        res = PyBytes_FromStringAndSize(buf, got < size ? got : size);
    }
    goto out;
err:
    pybpf_err(PYBPF_STATE(self), pybpf_libbpf_errno(r), jited ? "program jited" : "program xlated",
              self);
out:
    pybpf_leave(o);
    PyMem_Free(buf);
    return res;
}

static PyObject *
Program_xlated(PyObject *self, PyObject *unused)
{
    return pybpf_prog_image(self, 0);
}

static PyObject *
Program_jited(PyObject *self, PyObject *unused)
{
    return pybpf_prog_image(self, 1);
}

static int
pybpf_u32_arg(PyObject *v, const char *what, uint32_t *out)
{
    unsigned long long x;

    if (!PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(v)->tp_name);
        return -1;
    }
    x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s must be in 0..2**32-1", what);
        }
        return -1;
    }
    if (x > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s must be in 0..2**32-1, got %llu", what, x);
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

/* _test_run(data, ctx, repeat, data_out_size, ctx_out_size, flags, cpu, batch_size)
 *   -> (retval, data_out | None, ctx_out | None, duration_ns)
 * data/ctx: bytes-like or None.  A size of 0 passes no output buffer (some program types,
 * raw tracepoints for one, refuse output buffers).  For BPF_PROG_TYPE_SYSCALL the kernel
 * writes the context back into the input buffer, so ctx is always copied into memory of
 * ours first and, for that type, returned as ctx_out. */
static PyObject *
Program_test_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    pybpf_state *st = PYBPF_STATE(self);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    Py_buffer data = {0};
    uint32_t repeat, dsize, csize, flags, cpu, batch;
    char *dout = NULL, *cin = NULL, *cout = NULL;
    Py_ssize_t clen = 0;
    PyObject *res = NULL, *pd = NULL, *pc = NULL;
    int fd, r, syscall_ctx;

    if (nargs != 8)
        return PyErr_Format(PyExc_TypeError, "_test_run takes 8 arguments, got %zd", nargs);
    if (pybpf_u32_arg(args[2], "repeat", &repeat) < 0 ||
        pybpf_u32_arg(args[3], "data_out_size", &dsize) < 0 ||
        pybpf_u32_arg(args[4], "ctx_out_size", &csize) < 0 ||
        pybpf_u32_arg(args[5], "flags", &flags) < 0 || pybpf_u32_arg(args[6], "cpu", &cpu) < 0 ||
        pybpf_u32_arg(args[7], "batch_size", &batch) < 0)
        return NULL;
    if (repeat > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "repeat must be < 2**31, got %u", repeat);
    syscall_ctx = PYBPF_PROG(self)->prog_type == BPF_PROG_TYPE_SYSCALL;
    if (args[0] != Py_None) {
        if (pybpf_get_buffer(args[0], &data, -1, "data", 0) < 0)
            return NULL;
        if (data.len > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "data must be smaller than 4 GiB");
            goto out;
        }
        opts.data_in = data.buf;
        opts.data_size_in = (uint32_t)data.len;
    }
    if (args[1] != Py_None) {
        Py_buffer cv;
        if (pybpf_get_buffer(args[1], &cv, -1, "ctx", 0) < 0)
            goto out;
        clen = cv.len;
        if (clen > UINT32_MAX) {
            PyBuffer_Release(&cv);
            PyErr_SetString(PyExc_ValueError, "ctx must be smaller than 4 GiB");
            goto out;
        }
        cin = PyMem_Malloc(clen ? clen : 1);
        if (!cin) {
            PyBuffer_Release(&cv);
            PyErr_NoMemory();
            goto out;
        }
        memcpy(cin, cv.buf, clen);
        PyBuffer_Release(&cv);
        opts.ctx_in = cin;
        opts.ctx_size_in = (uint32_t)clen;
    }
    if (dsize) {
        dout = PyMem_Malloc(dsize);
        if (!dout) {
            PyErr_NoMemory();
            goto out;
        }
        opts.data_out = dout;
        opts.data_size_out = dsize;
    }
    if (csize) {
        cout = PyMem_Calloc(1, csize);
        if (!cout) {
            PyErr_NoMemory();
            goto out;
        }
        opts.ctx_out = cout;
        opts.ctx_size_out = csize;
    }
    opts.repeat = (int)repeat;
    opts.flags = flags;
    opts.cpu = cpu;
    opts.batch_size = batch;

    fd = pybpf_enter(o);
    if (fd < 0)
        goto out;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_test_run_opts(fd, &opts);
    Py_END_ALLOW_THREADS
    pybpf_leave(o);
    if (r < 0) {
        int err = pybpf_libbpf_errno(r);
        if (err == ENOSPC && (dsize || csize)) {
            char hint[160];
            snprintf(hint, sizeof(hint),
                     "an output buffer is too small: data_out_size=%u for %u bytes of output, "
                     "ctx_out_size=%u for %u", dsize, opts.data_size_out, csize,
                     opts.ctx_size_out);
            pybpf_err_with(st, NULL, err, "program test_run", self, hint);
        } else {
            pybpf_err(st, err, "program test_run", self);
        }
        goto out;
    }
    if (dsize) {
        pd = PyBytes_FromStringAndSize(dout, opts.data_size_out < dsize ? opts.data_size_out
                                                                          : dsize);
        if (!pd)
            goto out;
    } else {
        pd = Py_NewRef(Py_None);
    }
    if (csize) {
        pc = PyBytes_FromStringAndSize(cout, opts.ctx_size_out < csize ? opts.ctx_size_out
                                                                         : csize);
    } else if (syscall_ctx && cin) {
        pc = PyBytes_FromStringAndSize(cin, clen);
    } else {
        pc = Py_NewRef(Py_None);
    }
    if (!pc)
        goto out;
    res = Py_BuildValue("(kOOk)", (unsigned long)opts.retval, pd, pc,
                        (unsigned long)opts.duration);
out:
    Py_XDECREF(pd);
    Py_XDECREF(pc);
    if (data.obj)
        PyBuffer_Release(&data);
    PyMem_Free(dout);
    PyMem_Free(cin);
    PyMem_Free(cout);
    return res;
}

static PyObject *
Program_repr(PyObject *self)
{
    PyBPF_ProgramObject *p = PYBPF_PROG(self);

    if (pybpf_fd_closed(&p->base))
        return PyUnicode_FromFormat("<%s closed>", Py_TYPE(self)->tp_name);
    return PyUnicode_FromFormat("<%s type=%u name='%s' id=%u fd=%d>", Py_TYPE(self)->tp_name,
                                p->prog_type, p->name, p->id, p->base.fd);
}

/* ---- getters: the cached, immutable part of the info ------------------------------------ */

static PyObject *
Program_get_id(PyObject *self, void *c)
{
    if (pybpf_check_open((PyBPF_FdObject *)self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(PYBPF_PROG(self)->id);
}

static PyObject *
Program_get_prog_type(PyObject *self, void *c)
{
    if (pybpf_check_open((PyBPF_FdObject *)self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(PYBPF_PROG(self)->prog_type);
}

static PyObject *
Program_get_name(PyObject *self, void *c)
{
    if (pybpf_check_open((PyBPF_FdObject *)self) < 0)
        return NULL;
    return pybpf_decode_name(PYBPF_PROG(self)->name, sizeof(PYBPF_PROG(self)->name));
}

static PyObject *
Program_get_tag(PyObject *self, void *c)
{
    static const char hex[] = "0123456789abcdef";
    char s[2 * BPF_TAG_SIZE];
    int i;

    if (pybpf_check_open((PyBPF_FdObject *)self) < 0)
        return NULL;
    for (i = 0; i < BPF_TAG_SIZE; i++) {
        s[2 * i] = hex[PYBPF_PROG(self)->tag[i] >> 4];
        s[2 * i + 1] = hex[PYBPF_PROG(self)->tag[i] & 15];
    }
    return PyUnicode_FromStringAndSize(s, sizeof(s));
}

static PyMethodDef Program_methods[] = {
    PYBPF_FD_METHODS,
    {"_load", (PyCFunction)(void (*)(void))Program_load, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("_load(prog_type, insns, license='GPL', *, name=None, ..., log_level=0, "
               "log_buf=None, fd_array=None, prog_btf_fd=0, func_info=None, line_info=None): load "
               "raw instructions with bpf_prog_load (no policy).")},
    {"from_fd", (PyCFunction)(void (*)(void))Program_from_fd,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("Wrap a program fd: dup it (transfer=False) or take it over (transfer=True). "
               "ValueError if the fd is not a BPF program.")},
    {"from_pin", Program_from_pin, METH_O | METH_CLASS,
     PyDoc_STR("Open the program pinned at a bpffs path.")},
    {"from_id", Program_from_id, METH_O | METH_CLASS,
     PyDoc_STR("Open a loaded program by its kernel id (BPFError ENOENT if it is gone).")},
    {"_info", Program_info, METH_NOARGS,
     PyDoc_STR("Return the kernel's bpf_prog_info as a dict (map_ids included).")},
    {"xlated", Program_xlated, METH_NOARGS,
     PyDoc_STR("Return the instructions as the verifier rewrote them (8 bytes each).")},
    {"jited", Program_jited, METH_NOARGS,
     PyDoc_STR("Return the JIT-compiled machine code (b'' when the JIT is off).")},
    {"pin", pybpf_fd_pin, METH_O,
     PyDoc_STR("Pin the program at a bpffs path; it then outlives every fd.")},
    {"_test_run", (PyCFunction)(void (*)(void))Program_test_run, METH_FASTCALL,
     PyDoc_STR("_test_run(data, ctx, repeat, data_out_size, ctx_out_size, flags, cpu, "
               "batch_size) -> (retval, data_out, ctx_out, duration_ns): BPF_PROG_TEST_RUN.")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Program_getsets[] = {
    PYBPF_FD_GETSETS,
    {"id", Program_get_id, NULL, PyDoc_STR("Kernel-wide id of the program."), NULL},
    {"prog_type", Program_get_prog_type, NULL, PyDoc_STR("enum bpf_prog_type as an int."), NULL},
    {"name", Program_get_name, NULL, PyDoc_STR("Name as the kernel stores it (<= 15 chars)."),
     NULL},
    {"tag", Program_get_tag, NULL, PyDoc_STR("The kernel's tag (instruction hash), hex."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Program_members[] = {
    PYBPF_FD_MEMBERS,
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Program_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("A loaded BPF program (fd-owning). Use bpf.Program.")},
    {Py_tp_methods, Program_methods},
    {Py_tp_getset, Program_getsets},
    {Py_tp_members, Program_members},
    {Py_tp_repr, Program_repr},
    {Py_tp_dealloc, pybpf_fd_dealloc},
    {Py_tp_finalize, pybpf_fd_finalize},
    {Py_tp_traverse, pybpf_fd_traverse},
    {0, NULL},
};

static PyType_Spec Program_spec = {
    .name = "bpf._bpf.Program",
    .basicsize = sizeof(PyBPF_ProgramObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Program_slots,
};

/* ---- introspection: walk kernel ids -------------------------------------------------------
 * Kinds: 0 programs, 1 maps, 2 links, 3 BTF objects. */

/* The next id after start of kind 0 programs, 1 maps, 2 links, 3 BTF; None at the end.
 * Also behind link.c's link_next_id(). */
static PyObject *
pybpf_next_id_of(PyObject *mod, unsigned int kind, __u32 start)
{
    __u32 next = 0;
    int r;

    Py_BEGIN_ALLOW_THREADS
    switch (kind) {
    case 0: r = bpf_prog_get_next_id(start, &next); break;
    case 1: r = bpf_map_get_next_id(start, &next); break;
    case 2: r = bpf_link_get_next_id(start, &next); break;
    default: r = bpf_btf_get_next_id(start, &next); break;
    }
    Py_END_ALLOW_THREADS
    if (r < 0) {
        int err = pybpf_libbpf_errno(r);
        if (err == ENOENT)
            Py_RETURN_NONE;  /* the end of the walk */
        return pybpf_err(pybpf_state_from_module(mod), err, "get next id", NULL);
    }
    return PyLong_FromUnsignedLong(next);
}

static PyObject *
pybpf_next_id(PyObject *mod, PyObject *args)
{
    unsigned int kind, start;

    if (!PyArg_ParseTuple(args, "II:_next_id", &kind, &start))
        return NULL;
    if (kind > 3)
        return PyErr_Format(PyExc_ValueError, "kind must be 0..3, got %u", kind);
    return pybpf_next_id_of(mod, kind, start);
}

/* Open by id, read the info, close.  None when the id vanished (ENOENT). */
static PyObject *
pybpf_prog_info_by_id(PyObject *mod, PyObject *arg)
{
    struct bpf_prog_info info;
    uint32_t *ids = NULL, nr = 0, id;
    PyObject *res;
    int fd, err;

    if (pybpf_id_arg(arg, "program", &id) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    fd = bpf_prog_get_fd_by_id(id);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        err = pybpf_libbpf_errno(fd);
        if (err == ENOENT)
            Py_RETURN_NONE;
        return pybpf_err(pybpf_state_from_module(mod), err, "program info by id", NULL);
    }
    err = pybpf_prog_get_info(fd, &info, &ids, &nr);
    close(fd);
    if (err) {
        if (err == ENOENT)
            Py_RETURN_NONE;
        return pybpf_err(pybpf_state_from_module(mod), err, "program info by id", NULL);
    }
    res = pybpf_prog_info_dict(&info, ids, nr);
    PyMem_Free(ids);
    return res;
}

static PyObject *
pybpf_map_info_by_id(PyObject *mod, PyObject *arg)
{
    struct bpf_map_info info;
    uint32_t len = sizeof(info), id;
    int fd, r, err;

    if (pybpf_id_arg(arg, "map", &id) < 0)
        return NULL;
    memset(&info, 0, sizeof(info));
    Py_BEGIN_ALLOW_THREADS
    fd = bpf_map_get_fd_by_id(id);
    if (fd >= 0) {
        r = bpf_map_get_info_by_fd(fd, &info, &len);
        err = r < 0 ? pybpf_libbpf_errno(r) : 0;
        close(fd);
    } else {
        err = pybpf_libbpf_errno(fd);
    }
    Py_END_ALLOW_THREADS
    if (err == ENOENT)
        Py_RETURN_NONE;
    if (err)
        return pybpf_err(pybpf_state_from_module(mod), err, "map info by id", NULL);
    return pybpf_map_info_dict(&info, "map_flags");
}

/* BPF_ENABLE_STATS: run_cnt/run_time_ns are counted while the returned fd stays open. */
static PyObject *
pybpf_enable_stats(PyObject *mod, PyObject *arg)
{
    long t = PyLong_AsLong(arg);
    int fd;

    if (t == -1 && PyErr_Occurred())
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    fd = bpf_enable_stats((enum bpf_stats_type)t);
    Py_END_ALLOW_THREADS
    if (fd < 0)
        return pybpf_err(pybpf_state_from_module(mod), pybpf_libbpf_errno(fd), "enable stats",
                         NULL);
    return PyLong_FromLong(fd);
}

static PyMethodDef pybpf_program_functions[] = {
    {"_next_id", pybpf_next_id, METH_VARARGS,
     PyDoc_STR("_next_id(kind, start) -> next id or None: kind 0 programs, 1 maps, 2 links, "
               "3 BTF.")},
    {"_prog_info_by_id", pybpf_prog_info_by_id, METH_O,
     PyDoc_STR("Return a program's info dict by id, or None if it no longer exists.")},
    {"_map_info_by_id", pybpf_map_info_by_id, METH_O,
     PyDoc_STR("Return a map's info dict by id, or None if it no longer exists.")},
    {"_enable_stats", pybpf_enable_stats, METH_O,
     PyDoc_STR("BPF_ENABLE_STATS: return an fd (the caller closes it) that keeps stats on.")},
    {NULL, NULL, 0, NULL},
};

static int
pybpf_program_init(PyObject *m, pybpf_state *st)
{
    return pybpf_add_type(m, &Program_spec, &st->Program_Type, pybpf_program_functions);
}
