/* Link: attachments and their lifetime.
 *
 * _bpf.Link owns a descriptor through the fd base.  For kernel links (bpf_link_create,
 * raw_tracepoint_open) that is the link fd: closing the last fd detaches unless the link is
 * pinned.  Attachments the kernel does not model as links (netlink XDP, clsact filters, legacy
 * perf-event probes) are Link objects too: the Python layer gives them an fd to hold (the perf
 * event, or a dup of the program) and an `on_close` callable that undoes the attachment.  That
 * callable is kept here, not in Python, so that an unclosed object collected by the GC (which
 * goes through the fd base's finalizer, with its ResourceWarning) still detaches.
 *
 * Besides the type, this file exports the thin module functions the attach policy in
 * bpf/links.py needs: XDP and TC (netlink through libbpf), prog_attach/detach/query,
 * link ids, and perf_event_open.
 */

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

typedef struct {
    PyBPF_FdObject base;
    PyObject *on_close; /* strong ref or NULL: called once, before the fd is closed */
    struct bpf_link *lbl; /* owned or NULL: a libbpf link (programs of a bpf.Object) */
    PyObject *object;     /* strong ref or NULL: the bpf.Object lbl belongs to */
} PyBPF_LinkObject;

#define LINK_STATE(self) PYBPF_STATE(self)

static void
pybpf_link_release(PyBPF_FdObject *o)
{
    PyBPF_LinkObject *self = (PyBPF_LinkObject *)o;
    PyObject *cb = self->on_close, *r;

    self->on_close = NULL;
    if (!cb)
        return;
    /* Called from close() (Python normally runs the callable itself first, see links.py, so
     * this is the finalizer path): an error cannot propagate from here. */
    r = PyObject_CallNoArgs(cb);
    if (!r)
        PyErr_WriteUnraisable(cb);
    Py_XDECREF(r);
    Py_DECREF(cb);
}

/* Build an instance of cls around an fd we own. */
static PyObject *
pybpf_link_new(PyTypeObject *cls, int fd)
{
    PyBPF_LinkObject *self = (PyBPF_LinkObject *)cls->tp_alloc(cls, 0);

    if (!self) {
        close(fd);
        return NULL;
    }
    pybpf_fd_init(&self->base, fd, 1, "link");
    self->base.release = pybpf_link_release;
    self->on_close = NULL;
    self->lbl = NULL;
    self->object = NULL;
    return (PyObject *)self;
}

static int
pybpf_link_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((PyBPF_LinkObject *)self)->on_close);
    Py_VISIT(((PyBPF_LinkObject *)self)->object);
    return pybpf_fd_traverse(self, visit, arg);
}

static int
pybpf_link_clear(PyObject *self)
{
    Py_CLEAR(((PyBPF_LinkObject *)self)->on_close);
    return 0;
}

/* ---- constructors ------------------------------------------------------------------------ */

/* Refuse an fd that is not a BPF link (BPFError, EBADF if it is not open, else EINVAL).
 * BPF_OBJ_GET_INFO_BY_FD answers for any BPF object (a program fd would fill the link info
 * with program fields), hence the anon-inode test as well. */
static int
pybpf_link_check(pybpf_state *st, int fd, const char *op, PyObject *obj)
{
    struct bpf_link_info info;
    __u32 len = sizeof(info);

    memset(&info, 0, sizeof(info));
    if (bpf_link_get_info_by_fd(fd, &info, &len) < 0 ||
        pybpf_fd_is(fd, "bpf_link", NULL, 0) <= 0) {
        pybpf_err_with(st, NULL, errno == EBADF ? EBADF : EINVAL, op, obj, "not a BPF link");
        return -1;
    }
    return 0;
}

/* The pybpf_fd_check_fn of from_fd: check it really is a link before taking it, so a wrong
 * fd fails here, not later. */
static int
pybpf_link_check_fd(PyTypeObject *cls, int fd)
{
    return pybpf_link_check(pybpf_state_from_type(cls), fd, "link from_fd", NULL);
}

static PyObject *
Link_from_fd(PyObject *cls, PyObject *args, PyObject *kwds)
{
    int fd = pybpf_fd_from_fd_args((PyTypeObject *)cls, args, kwds, "link",
                                   pybpf_link_check_fd);

    if (fd < 0)
        return NULL;
    return pybpf_link_new((PyTypeObject *)cls, fd);
}

/* Link._wrap_fd(fd): adopt (dup) any fd without checking that it is a link.  Used for
 * attachments that are not kernel links: they hold a dup of the program fd, which keeps the
 * program alive as long as the attachment object and gives fileno()/closed their meaning. */
static PyObject *
Link_wrap_fd(PyObject *cls, PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    int fd;

    if (v == -1 && PyErr_Occurred())
        return NULL;
    if (v < 0 || v > INT32_MAX)
        return PyErr_Format(PyExc_ValueError, "fd out of range: %ld", v);
    fd = pybpf_adopt_fd((int)v, 0, "link");
    if (fd < 0)
        return NULL;
    return pybpf_link_new((PyTypeObject *)cls, fd);
}

static PyObject *
Link_from_pin(PyObject *cls, PyObject *arg)
{
    pybpf_state *st = pybpf_state_from_type((PyTypeObject *)cls);
    int fd = pybpf_fd_from_pin(st, arg, 0, "link");

    if (fd < 0)
        return NULL;
    /* bpf_obj_get returns any kind of object: make sure this one is a link. */
    if (pybpf_link_check(st, fd, "link from_pin", arg) < 0) {
        close(fd);
        return NULL;
    }
    return pybpf_link_new((PyTypeObject *)cls, fd);
}

static PyObject *
Link_from_id(PyObject *cls, PyObject *arg)
{
    uint32_t id;
    int fd;

    if (pybpf_id_arg(arg, "link", &id) < 0)
        return NULL;
    fd = pybpf_fd_by_id(pybpf_state_from_type((PyTypeObject *)cls), bpf_link_get_fd_by_id_opts,
                        id, 0, "link");
    if (fd < 0)
        return NULL;
    return pybpf_link_new((PyTypeObject *)cls, fd);
}

/* Convert a sequence of ints into a malloc'ed array of unsigned long / __u64. */
static int
pybpf_seq_to_u64(PyObject *seq, const char *what, __u64 **out, Py_ssize_t *n)
{
    PyObject *fast;
    Py_ssize_t i;

    *out = NULL;
    *n = 0;
    if (!seq || seq == Py_None)
        return 0;
    fast = PySequence_Fast(seq, what);
    if (!fast)
        return -1;
    *n = PySequence_Fast_GET_SIZE(fast);
    *out = PyMem_Calloc(*n ? *n : 1, sizeof(__u64));
    if (!*out) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < *n; i++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            PyMem_Free(*out);
            *out = NULL;
            return -1;
        }
        (*out)[i] = v;
    }
    Py_DECREF(fast);
    return 0;
}

/* Link._create(prog_fd, target_fd, attach_type, *, flags, target_btf_id, cookie, relative_fd,
 * relative_id, expected_revision, iter_info, syms, addrs, cookies, path, offsets,
 * ref_ctr_offsets, pid, netfilter): bpf_link_create with the union member the attach type
 * selects filled from the keywords.  Sizes and lists are checked here; meaning in Python. */
static PyObject *
Link_create(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"prog_fd", "target_fd", "attach_type", "flags", "target_btf_id",
                             "cookie", "relative_fd", "relative_id", "expected_revision",
                             "iter_info", "syms", "addrs", "cookies", "path", "offsets",
                             "ref_ctr_offsets", "pid", "netfilter", NULL};
    pybpf_state *st = pybpf_state_from_type((PyTypeObject *)cls);
    int prog_fd, target_fd, relative_fd = 0, pid = 0, fd = -1, err = 0;
    unsigned int attach_type, flags = 0, target_btf_id = 0, relative_id = 0;
    unsigned long long cookie = 0, expected_revision = 0;
    PyObject *iter_info = NULL, *syms = NULL, *addrs = NULL, *cookies = NULL, *path = NULL;
    PyObject *offsets = NULL, *ref_ctr = NULL, *netfilter = NULL, *syms_fast = NULL;
    PyObject *res = NULL;
    Py_buffer iter_buf = {0};
    __u64 *addr_arr = NULL, *cookie_arr = NULL, *off_arr = NULL, *ref_arr = NULL;
    Py_ssize_t n_addrs = 0, n_cookies = 0, n_off = 0, n_ref = 0, n_syms = 0, i;
    const char **sym_arr = NULL;
    LIBBPF_OPTS(bpf_link_create_opts, opts);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iiI|$IIKiIKOOOOO&OOiO:_create", kwlist,
                                     &prog_fd, &target_fd, &attach_type, &flags,
                                     &target_btf_id, &cookie, &relative_fd, &relative_id,
                                     &expected_revision, &iter_info, &syms, &addrs, &cookies,
                                     PyUnicode_FSConverter, &path, &offsets, &ref_ctr, &pid,
                                     &netfilter))
        return NULL;
    opts.flags = flags;
    opts.target_btf_id = target_btf_id;
    if (iter_info && iter_info != Py_None) {
        if (pybpf_get_buffer(iter_info, &iter_buf, -1, "iter_info", 0) < 0)
            goto out;
        opts.iter_info = (union bpf_iter_link_info *)iter_buf.buf;
        opts.iter_info_len = (__u32)iter_buf.len;
    }
    if (pybpf_seq_to_u64(addrs, "addrs must be a sequence of ints", &addr_arr, &n_addrs) < 0 ||
        pybpf_seq_to_u64(cookies, "cookies must be a sequence of ints", &cookie_arr,
                         &n_cookies) < 0 ||
        pybpf_seq_to_u64(offsets, "offsets must be a sequence of ints", &off_arr, &n_off) < 0 ||
        pybpf_seq_to_u64(ref_ctr, "ref_ctr_offsets must be a sequence of ints", &ref_arr,
                         &n_ref) < 0)
        goto out;
    if (syms && syms != Py_None) {
        syms_fast = PySequence_Fast(syms, "syms must be a sequence of str");
        if (!syms_fast)
            goto out;
        n_syms = PySequence_Fast_GET_SIZE(syms_fast);
        sym_arr = PyMem_Calloc(n_syms ? n_syms : 1, sizeof(char *));
        if (!sym_arr) {
            PyErr_NoMemory();
            goto out;
        }
        for (i = 0; i < n_syms; i++) {
            /* UTF-8 buffers stay alive with the str objects held by syms_fast. */
            sym_arr[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(syms_fast, i));
            if (!sym_arr[i])
                goto out;
        }
    }

    switch (attach_type) {
    case BPF_PERF_EVENT:
        opts.perf_event.bpf_cookie = cookie;
        break;
    case BPF_TRACE_KPROBE_MULTI:
    case BPF_TRACE_KPROBE_SESSION: {
        Py_ssize_t cnt = sym_arr ? n_syms : n_addrs;
        if (!!sym_arr == !!addr_arr) {
            PyErr_SetString(PyExc_ValueError, "kprobe_multi needs exactly one of syms, addrs");
            goto out;
        }
        if (cookie_arr && n_cookies != cnt) {
            PyErr_Format(PyExc_ValueError, "cookies has %zd entries, functions %zd", n_cookies,
                         cnt);
            goto out;
        }
        opts.kprobe_multi.flags = flags;
        opts.flags = 0;
        opts.kprobe_multi.cnt = (__u32)cnt;
        opts.kprobe_multi.syms = sym_arr;
        opts.kprobe_multi.addrs = (const unsigned long *)addr_arr;
        opts.kprobe_multi.cookies = cookie_arr;
        break;
    }
    case BPF_TRACE_UPROBE_MULTI:
    case BPF_TRACE_UPROBE_SESSION:
        if (!path || !off_arr) {
            PyErr_SetString(PyExc_ValueError, "uprobe_multi needs path and offsets");
            goto out;
        }
        if ((ref_arr && n_ref != n_off) || (cookie_arr && n_cookies != n_off)) {
            PyErr_SetString(PyExc_ValueError,
                            "ref_ctr_offsets and cookies must have one entry per offset");
            goto out;
        }
        if (sizeof(unsigned long) != sizeof(__u64)) {
            /* 32-bit: narrow in place (the array is ours). */
            unsigned long *p = (unsigned long *)off_arr;
            for (i = 0; i < n_off; i++)
                p[i] = (unsigned long)off_arr[i];
            if (ref_arr) {
                p = (unsigned long *)ref_arr;
                for (i = 0; i < n_ref; i++)
                    p[i] = (unsigned long)ref_arr[i];
            }
        }
        opts.uprobe_multi.flags = flags;
        opts.flags = 0;
        opts.uprobe_multi.cnt = (__u32)n_off;
        opts.uprobe_multi.path = PyBytes_AS_STRING(path);
        opts.uprobe_multi.offsets = (const unsigned long *)off_arr;
        opts.uprobe_multi.ref_ctr_offsets = (const unsigned long *)ref_arr;
        opts.uprobe_multi.cookies = cookie_arr;
        opts.uprobe_multi.pid = (__u32)pid;
        break;
    case BPF_TRACE_RAW_TP:
    case BPF_TRACE_FENTRY:
    case BPF_TRACE_FEXIT:
    case BPF_MODIFY_RETURN:
    case BPF_LSM_MAC:
        if (!target_btf_id)
            opts.tracing.cookie = cookie;
        break;
    case BPF_NETFILTER:
        if (!netfilter || !PyArg_ParseTuple(netfilter, "IIi;netfilter must be (pf, hooknum, "
                                            "priority)", &opts.netfilter.pf,
                                            &opts.netfilter.hooknum,
                                            &opts.netfilter.priority)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "netfilter=(pf, hooknum, priority) needed");
            goto out;
        }
        opts.netfilter.flags = flags;
        opts.flags = 0;
        break;
    case BPF_TCX_INGRESS:
    case BPF_TCX_EGRESS:
        opts.tcx.relative_fd = relative_fd;
        opts.tcx.relative_id = relative_id;
        opts.tcx.expected_revision = expected_revision;
        break;
    case BPF_NETKIT_PRIMARY:
    case BPF_NETKIT_PEER:
        opts.netkit.relative_fd = relative_fd;
        opts.netkit.relative_id = relative_id;
        opts.netkit.expected_revision = expected_revision;
        break;
    default:
        /* cgroup attach types take ordering as well (kernel 6.15+); others ignore zeros. */
        if (relative_fd || relative_id || expected_revision) {
            opts.cgroup.relative_fd = relative_fd;
            opts.cgroup.relative_id = relative_id;
            opts.cgroup.expected_revision = expected_revision;
        }
        break;
    }

    Py_BEGIN_ALLOW_THREADS
    fd = bpf_link_create(prog_fd, target_fd, (enum bpf_attach_type)attach_type, &opts);
    err = fd < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        pybpf_err(st, err, "link create", NULL);
        goto out;
    }
    if (fd == 0) {
        fd = pybpf_adopt_fd(fd, 1, "link");
        if (fd < 0)
            goto out;
    }
    res = pybpf_link_new((PyTypeObject *)cls, fd);
out:
    if (iter_buf.obj)
        PyBuffer_Release(&iter_buf);
    PyMem_Free(addr_arr);
    PyMem_Free(cookie_arr);
    PyMem_Free(off_arr);
    PyMem_Free(ref_arr);
    PyMem_Free(sym_arr);
    Py_XDECREF(syms_fast);
    Py_XDECREF(path);
    return res;
}

/* Link._raw_tracepoint_open(prog_fd, name=None, cookie=0): BPF_RAW_TRACEPOINT_OPEN, used for
 * raw tracepoints and for tracing programs on kernels without LINK_CREATE for them. */
static PyObject *
Link_raw_tracepoint_open(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"prog_fd", "name", "cookie", NULL};
    int prog_fd, fd, err;
    const char *name = NULL;
    unsigned long long cookie = 0;
    LIBBPF_OPTS(bpf_raw_tp_opts, opts);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|zK:_raw_tracepoint_open", kwlist, &prog_fd,
                                     &name, &cookie))
        return NULL;
    opts.tp_name = name;
    opts.cookie = cookie;
    Py_BEGIN_ALLOW_THREADS
    fd = bpf_raw_tracepoint_open_opts(prog_fd, &opts);
    err = fd < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (fd < 0)
        return pybpf_err(pybpf_state_from_type((PyTypeObject *)cls), err,
                         "raw tracepoint open", name ? PyTuple_GET_ITEM(args, 1) : NULL);
    if (fd == 0 && (fd = pybpf_adopt_fd(fd, 1, "link")) < 0)
        return NULL;
    return pybpf_link_new((PyTypeObject *)cls, fd);
}

/* ---- programs of a bpf.Object: libbpf's own attach ------------------------------------------
 * libbpf's bpf_program__attach_* know things raw programs cannot have: the section's
 * auto-attach rules and USDT (whose BPF-side helpers read a spec map libbpf fills in).  The
 * struct bpf_link is kept here and destroyed when the Link is released; our fd is a dup of
 * libbpf's link fd (or, for USDT, which has none, of the program's fd). */

static void
pybpf_link_release_libbpf(PyBPF_FdObject *o)
{
    PyBPF_LinkObject *self = (PyBPF_LinkObject *)o;
    struct bpf_link *l = self->lbl;
    PyObject *objref = self->object;

    pybpf_link_release(o);
    self->lbl = NULL;
    self->object = NULL;
    if (l) {
        /* A USDT link's detach uses the object's USDT manager, freed with the object: when
         * the Object was closed first, leak the small struct (its probes end with the
         * process) rather than touch freed memory. */
        if (objref && pybpf_object_check((PyBPF_Object *)objref) < 0) {
            PyErr_Clear();
        } else {
            bpf_link__destroy(l);
        }
    }
    Py_XDECREF(objref);
}

static PyObject *
Link_libbpf_attach(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"object", "name", "kind", "binary", "func", "provider", "usdt",
                             "pid", "retprobe", "offset", "cookie", NULL};
    pybpf_state *st = pybpf_state_from_type((PyTypeObject *)cls);
    PyObject *obj, *res;
    const char *name, *kind, *binary = NULL, *func = NULL, *provider = NULL, *usdt = NULL;
    int pid = -1, retprobe = 0, fd, err = 0;
    unsigned long long offset = 0, cookie = 0;
    struct bpf_program *prog;
    struct bpf_link *l = NULL;
    PyBPF_LinkObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oss|zzzzipKK:_libbpf_attach", kwlist, &obj,
                                     &name, &kind, &binary, &func, &provider, &usdt, &pid,
                                     &retprobe, &offset, &cookie))
        return NULL;
    if (!(prog = pybpf_object_get_program(st, obj, name)))
        return NULL;
    if (strcmp(kind, "auto") && strcmp(kind, "uprobe") && strcmp(kind, "usdt"))
        return PyErr_Format(PyExc_ValueError, "unknown attach kind %s", kind);
    if ((!strcmp(kind, "uprobe") || !strcmp(kind, "usdt")) && !binary)
        return PyErr_Format(PyExc_ValueError, "%s needs a binary", kind);
    if (!strcmp(kind, "usdt") && (!provider || !usdt))
        return PyErr_Format(PyExc_ValueError, "usdt needs provider and name");
    Py_BEGIN_ALLOW_THREADS
    errno = 0;
    if (!strcmp(kind, "auto")) {
        l = bpf_program__attach(prog);
    } else if (!strcmp(kind, "uprobe")) {
        LIBBPF_OPTS(bpf_uprobe_opts, uo);
        uo.func_name = func;
        uo.retprobe = retprobe;
        uo.bpf_cookie = cookie;
        l = bpf_program__attach_uprobe_opts(prog, pid, binary, (size_t)offset, &uo);
    } else {
        LIBBPF_OPTS(bpf_usdt_opts, so);
        so.usdt_cookie = cookie;
        l = bpf_program__attach_usdt(prog, pid, binary, provider, usdt, &so);
    }
    if (!l)
        err = errno ? errno : EINVAL;
    Py_END_ALLOW_THREADS
    if (!l)
        return pybpf_err_with(st, NULL, err, "libbpf attach", NULL,
                              err == ESRCH || err == ENOENT
                                  ? "the target (function, symbol, binary or probe) was not found"
                                  : NULL);
    fd = bpf_link__fd(l);
    if (fd < 0)
        fd = bpf_program__fd(prog);
    fd = fcntl(fd, F_DUPFD_CLOEXEC, 1);
    if (fd < 0) {
        err = errno;
        bpf_link__destroy(l);
        return pybpf_err(st, err, "libbpf attach", NULL);
    }
    res = pybpf_link_new((PyTypeObject *)cls, fd);
    if (!res) {
        bpf_link__destroy(l);
        return NULL;
    }
    self = (PyBPF_LinkObject *)res;
    self->lbl = l;
    self->object = Py_NewRef(obj);
    self->base.release = pybpf_link_release_libbpf;
    return res;
}

/* ---- methods ------------------------------------------------------------------------------ */

static PyObject *
Link_update(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"prog_fd", "old_prog_fd", NULL};
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    int prog_fd, old_prog_fd = -1, fd, r, err;
    LIBBPF_OPTS(bpf_link_update_opts, opts);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|i:update", kwlist, &prog_fd, &old_prog_fd))
        return NULL;
    if (old_prog_fd >= 0) {
        opts.flags = BPF_F_REPLACE;
        opts.old_prog_fd = old_prog_fd;
    }
    if ((fd = pybpf_enter(o)) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_link_update(fd, prog_fd, &opts);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    pybpf_leave(o);
    if (r < 0)
        return pybpf_err_with(LINK_STATE(self), NULL, err, "link update", self,
                              err == EINVAL ? "the new program must have the same type and "
                                              "attach type"
                              : err == EPERM && old_prog_fd >= 0
                                  ? "the link no longer runs the expected old program"
                                  : err == EOPNOTSUPP ? "this kind of link cannot be updated"
                                                      : NULL);
    Py_RETURN_NONE;
}

static PyObject *
Link_link_detach(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    int fd, r, err;

    if ((fd = pybpf_enter(o)) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_link_detach(fd);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    pybpf_leave(o);
    if (r < 0)
        return pybpf_err_with(LINK_STATE(self), NULL, err, "link detach", self,
                              err == EOPNOTSUPP ? "this kind of link cannot be detached while "
                                                  "open; close it instead"
                                                : NULL);
    Py_RETURN_NONE;
}

#define PYBPF_NAME_BUF 4096

/* Link.info() -> dict: the kernel's bpf_link_info, with per-type fields under their uapi
 * names (strings decoded, arrays as lists).  Two calls: the first learns the type and the
 * array sizes, the second passes buffers for the names and arrays. */
static PyObject *
Link_info(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    struct bpf_link_info info;
    __u32 len = sizeof(info), cnt = 0;
    int fd, r, err;
    char *name = NULL;
    __u64 *a1 = NULL, *a2 = NULL, *a3 = NULL;
    PyObject *d = NULL;

    if ((fd = pybpf_enter(o)) < 0)
        return NULL;
    memset(&info, 0, sizeof(info));
    Py_BEGIN_ALLOW_THREADS
    r = bpf_link_get_info_by_fd(fd, &info, &len);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (r < 0)
        goto fail_err;
    name = PyMem_Calloc(1, PYBPF_NAME_BUF);
    if (!name)
        goto nomem;
    switch (info.type) {
    case BPF_LINK_TYPE_KPROBE_MULTI:
        cnt = info.kprobe_multi.count;
        break;
    case BPF_LINK_TYPE_UPROBE_MULTI:
        cnt = info.uprobe_multi.count;
        break;
    default:
        break;
    }
    if (cnt) {
        a1 = PyMem_Calloc(cnt, sizeof(__u64));
        a2 = PyMem_Calloc(cnt, sizeof(__u64));
        a3 = PyMem_Calloc(cnt, sizeof(__u64));
        if (!a1 || !a2 || !a3)
            goto nomem;
    }
    {
        __u32 type = info.type, pe_type = info.perf_event.type;
        memset(&info, 0, sizeof(info));
        switch (type) {
        case BPF_LINK_TYPE_RAW_TRACEPOINT:
            info.raw_tracepoint.tp_name = (__u64)(uintptr_t)name;
            info.raw_tracepoint.tp_name_len = PYBPF_NAME_BUF;
            break;
        case BPF_LINK_TYPE_ITER:
            info.iter.target_name = (__u64)(uintptr_t)name;
            info.iter.target_name_len = PYBPF_NAME_BUF;
            break;
        case BPF_LINK_TYPE_KPROBE_MULTI:
            info.kprobe_multi.addrs = (__u64)(uintptr_t)a1;
            info.kprobe_multi.cookies = (__u64)(uintptr_t)a2;
            info.kprobe_multi.count = cnt;
            break;
        case BPF_LINK_TYPE_UPROBE_MULTI:
            info.uprobe_multi.path = (__u64)(uintptr_t)name;
            info.uprobe_multi.path_size = PYBPF_NAME_BUF;
            info.uprobe_multi.offsets = (__u64)(uintptr_t)a1;
            info.uprobe_multi.ref_ctr_offsets = (__u64)(uintptr_t)a2;
            info.uprobe_multi.cookies = (__u64)(uintptr_t)a3;
            info.uprobe_multi.count = cnt;
            break;
        case BPF_LINK_TYPE_PERF_EVENT:
            switch (pe_type) {
            case BPF_PERF_EVENT_UPROBE:
            case BPF_PERF_EVENT_URETPROBE:
                info.perf_event.uprobe.file_name = (__u64)(uintptr_t)name;
                info.perf_event.uprobe.name_len = PYBPF_NAME_BUF;
                break;
            case BPF_PERF_EVENT_KPROBE:
            case BPF_PERF_EVENT_KRETPROBE:
                info.perf_event.kprobe.func_name = (__u64)(uintptr_t)name;
                info.perf_event.kprobe.name_len = PYBPF_NAME_BUF;
                break;
            case BPF_PERF_EVENT_TRACEPOINT:
                info.perf_event.tracepoint.tp_name = (__u64)(uintptr_t)name;
                info.perf_event.tracepoint.name_len = PYBPF_NAME_BUF;
                break;
            default:
                break;
            }
            break;
        default:
            break;
        }
        len = sizeof(info);
        Py_BEGIN_ALLOW_THREADS
        r = bpf_link_get_info_by_fd(fd, &info, &len);
        err = r < 0 ? errno : 0;
        Py_END_ALLOW_THREADS
        if (r < 0)
            goto fail_err;
        name[PYBPF_NAME_BUF - 1] = 0;
    }
    pybpf_leave(o);
    o = NULL;

    d = PyDict_New();
    if (!d)
        goto fail;
#define SETU(k, v)                                                                           \
    if (PYBPF_SET_U64(d, k, (v)) < 0)                                                        \
        goto fail
#define SETI(k, v)                                                                           \
    if (pybpf_dict_set(d, k, PyLong_FromLongLong(v)) < 0)                                    \
        goto fail
/* paths and kernel symbols: bytes from the kernel, decoded like file names */
#define SETS(k)                                                                              \
    if (pybpf_dict_set(d, k, PyUnicode_DecodeFSDefaultAndSize(                                \
                                 name, (Py_ssize_t)strnlen(name, PYBPF_NAME_BUF))) < 0)       \
        goto fail
#define SETL(k, a)                                                                           \
    if (pybpf_dict_set(d, k, pybpf_uint_list(a, cnt, 8)) < 0)                                \
        goto fail
    SETU("type", info.type);
    SETU("id", info.id);
    SETU("prog_id", info.prog_id);
    switch (info.type) {
    case BPF_LINK_TYPE_RAW_TRACEPOINT:
        SETS("tp_name");
        SETU("cookie", info.raw_tracepoint.cookie);
        break;
    case BPF_LINK_TYPE_TRACING:
        SETU("attach_type", info.tracing.attach_type);
        SETU("target_obj_id", info.tracing.target_obj_id);
        SETU("target_btf_id", info.tracing.target_btf_id);
        SETU("cookie", info.tracing.cookie);
        break;
    case BPF_LINK_TYPE_CGROUP:
        SETU("cgroup_id", info.cgroup.cgroup_id);
        SETU("attach_type", info.cgroup.attach_type);
        break;
    case BPF_LINK_TYPE_ITER:
        SETS("target_name");
        SETU("map_id", info.iter.map.map_id);
        break;
    case BPF_LINK_TYPE_NETNS:
        SETU("netns_ino", info.netns.netns_ino);
        SETU("attach_type", info.netns.attach_type);
        break;
    case BPF_LINK_TYPE_XDP:
        SETU("ifindex", info.xdp.ifindex);
        break;
    case BPF_LINK_TYPE_STRUCT_OPS:
        SETU("map_id", info.struct_ops.map_id);
        break;
    case BPF_LINK_TYPE_NETFILTER:
        SETU("pf", info.netfilter.pf);
        SETU("hooknum", info.netfilter.hooknum);
        SETI("priority", info.netfilter.priority);
        SETU("flags", info.netfilter.flags);
        break;
    case BPF_LINK_TYPE_KPROBE_MULTI:
        SETU("count", info.kprobe_multi.count);
        SETU("flags", info.kprobe_multi.flags);
        SETU("missed", info.kprobe_multi.missed);
        SETL("addrs", a1);
        SETL("cookies", a2);
        break;
    case BPF_LINK_TYPE_UPROBE_MULTI:
        SETS("path");
        SETU("count", info.uprobe_multi.count);
        SETU("flags", info.uprobe_multi.flags);
        SETU("pid", info.uprobe_multi.pid);
        SETL("offsets", a1);
        SETL("ref_ctr_offsets", a2);
        SETL("cookies", a3);
        break;
    case BPF_LINK_TYPE_PERF_EVENT:
        SETU("perf_event_type", info.perf_event.type);
        switch (info.perf_event.type) {
        case BPF_PERF_EVENT_UPROBE:
        case BPF_PERF_EVENT_URETPROBE:
            SETS("file_name");
            SETU("offset", info.perf_event.uprobe.offset);
            SETU("cookie", info.perf_event.uprobe.cookie);
            SETU("ref_ctr_offset", info.perf_event.uprobe.ref_ctr_offset);
            break;
        case BPF_PERF_EVENT_KPROBE:
        case BPF_PERF_EVENT_KRETPROBE:
            SETS("func_name");
            SETU("offset", info.perf_event.kprobe.offset);
            SETU("addr", info.perf_event.kprobe.addr);
            SETU("missed", info.perf_event.kprobe.missed);
            SETU("cookie", info.perf_event.kprobe.cookie);
            break;
        case BPF_PERF_EVENT_TRACEPOINT:
            SETS("tp_name");
            SETU("cookie", info.perf_event.tracepoint.cookie);
            break;
        case BPF_PERF_EVENT_EVENT:
            SETU("config", info.perf_event.event.config);
            SETU("event_type", info.perf_event.event.type);
            SETU("cookie", info.perf_event.event.cookie);
            break;
        default:
            break;
        }
        break;
    case BPF_LINK_TYPE_TCX:
        SETU("ifindex", info.tcx.ifindex);
        SETU("attach_type", info.tcx.attach_type);
        break;
    case BPF_LINK_TYPE_NETKIT:
        SETU("ifindex", info.netkit.ifindex);
        SETU("attach_type", info.netkit.attach_type);
        break;
    case BPF_LINK_TYPE_SOCKMAP:
        SETU("map_id", info.sockmap.map_id);
        SETU("attach_type", info.sockmap.attach_type);
        break;
    default:
        break;
    }
#undef SETU
#undef SETI
#undef SETS
#undef SETL
    PyMem_Free(name);
    PyMem_Free(a1);
    PyMem_Free(a2);
    PyMem_Free(a3);
    return d;

nomem:
    PyErr_NoMemory();
    goto fail;
fail_err:
    pybpf_err(LINK_STATE(self), err, "link info", NULL);
fail:
    if (o)
        pybpf_leave(o);
    Py_XDECREF(d);
    PyMem_Free(name);
    PyMem_Free(a1);
    PyMem_Free(a2);
    PyMem_Free(a3);
    return NULL;
}

/* Link.iter_create() -> int: a new fd that reads the iterator's output (BPF_ITER_CREATE).
 * The caller owns it (bpf/links.py wraps it in a file object). */
static PyObject *
Link_iter_create(PyObject *self, PyObject *unused)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    int fd, r, err;

    if ((fd = pybpf_enter(o)) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_iter_create(fd);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    pybpf_leave(o);
    if (r < 0)
        return pybpf_err(LINK_STATE(self), err, "iterator create", self);
    if (r == 0 && (r = pybpf_adopt_fd(r, 1, "iterator")) < 0)
        return NULL;
    return PyLong_FromLong(r);
}

static PyObject *
Link_set_on_close(PyObject *self, PyObject *cb)
{
    PyBPF_LinkObject *l = (PyBPF_LinkObject *)self;

    if (cb != Py_None && !PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "on_close must be callable or None");
    Py_XSETREF(l->on_close, cb == Py_None ? NULL : Py_NewRef(cb));
    /* Re-arm the release hook if a release already ran (it clears itself); keep a more
     * specific hook if one is set. */
    if (!l->base.release)
        l->base.release = pybpf_link_release;
    Py_RETURN_NONE;
}

static PyObject *
Link_take_on_close(PyObject *self, PyObject *unused)
{
    PyBPF_LinkObject *l = (PyBPF_LinkObject *)self;
    PyObject *cb = l->on_close;

    l->on_close = NULL;
    if (!cb)
        Py_RETURN_NONE;
    return cb;
}

static PyObject *
Link_repr(PyObject *self)
{
    PyBPF_FdObject *o = (PyBPF_FdObject *)self;
    const char *name = Py_TYPE(self)->tp_name;

    if (pybpf_fd_closed(o))
        return PyUnicode_FromFormat("<%s closed>", name);
    return PyUnicode_FromFormat("<%s fd=%d>", name, o->fd);
}

static PyMethodDef Link_methods[] = {
    PYBPF_FD_METHODS,
    {"from_fd", (PyCFunction)(void (*)(void))Link_from_fd,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("from_fd(fd, transfer=False): adopt a link fd (dup unless transfer).")},
    {"from_pin", Link_from_pin, METH_O | METH_CLASS,
     PyDoc_STR("Open a link pinned on bpffs at path.")},
    {"_wrap_fd", Link_wrap_fd, METH_O | METH_CLASS,
     PyDoc_STR("Adopt a dup of any fd (for attachments that are not kernel links).")},
    {"from_id", Link_from_id, METH_O | METH_CLASS, PyDoc_STR("Open a link by its kernel id.")},
    {"_create", (PyCFunction)(void (*)(void))Link_create,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("_create(prog_fd, target_fd, attach_type, **opts): bpf_link_create.")},
    {"_raw_tracepoint_open", (PyCFunction)(void (*)(void))Link_raw_tracepoint_open,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("_raw_tracepoint_open(prog_fd, name=None, cookie=0): BPF_RAW_TRACEPOINT_OPEN.")},
    {"_libbpf_attach", (PyCFunction)(void (*)(void))Link_libbpf_attach,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     PyDoc_STR("_libbpf_attach(object, name, kind, binary=None, func=None, provider=None, "
               "usdt=None, pid=-1, retprobe=False, offset=0, cookie=0): libbpf's "
               "bpf_program__attach (kind 'auto'), _attach_uprobe_opts ('uprobe') or "
               "_attach_usdt ('usdt') for a program of a bpf.Object.")},
    {"pin", pybpf_fd_pin, METH_O, PyDoc_STR("Pin the link at path on bpffs.")},
    {"_update", (PyCFunction)(void (*)(void))Link_update, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("_update(prog_fd, old_prog_fd=-1): bpf_link_update, atomic replace.")},
    {"_link_detach", Link_link_detach, METH_NOARGS,
     PyDoc_STR("bpf_link_detach: end the attachment, keep the (now defunct) link fd.")},
    {"_info", Link_info, METH_NOARGS, PyDoc_STR("bpf_link_info as a dict.")},
    {"_iter_create", Link_iter_create, METH_NOARGS,
     PyDoc_STR("Create an iterator reader fd from an iter link; the caller owns it.")},
    {"_set_on_close", Link_set_on_close, METH_O,
     PyDoc_STR("Set the callable that undoes a non-kernel attachment when closed.")},
    {"_take_on_close", Link_take_on_close, METH_NOARGS,
     PyDoc_STR("Remove and return the on-close callable (None if unset).")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Link_getsets[] = {
    PYBPF_FD_GETSETS,
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Link_members[] = {
    PYBPF_FD_MEMBERS,
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Link_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("An attachment of a BPF program (fd-owning).")},
    {Py_tp_methods, Link_methods},
    {Py_tp_getset, Link_getsets},
    {Py_tp_members, Link_members},
    {Py_tp_repr, Link_repr},
    {Py_tp_finalize, pybpf_fd_finalize},
    {Py_tp_dealloc, pybpf_fd_dealloc},
    {Py_tp_traverse, pybpf_link_traverse},
    {Py_tp_clear, pybpf_link_clear},
    {0, NULL},
};

static PyType_Spec Link_spec = {
    .name = "bpf._bpf.Link",
    .basicsize = sizeof(PyBPF_LinkObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Link_slots,
};

/* ---- module functions --------------------------------------------------------------------- */

#define MOD_STATE(mod) pybpf_state_from_module(mod)

static PyObject *
pybpf_link_next_id(PyObject *mod, PyObject *arg)
{
    unsigned long start = PyLong_AsUnsignedLong(arg);

    if (start == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    return pybpf_next_id_of(mod, 2, (__u32)start);  /* program.c: the walk of every kind */
}

/* perf_event_open(attr, pid, cpu, group_fd=-1, flags=0) -> fd.  attr is the packed
 * struct perf_event_attr built in Python (bpf/perf.py); its size field must be set there.
 * PERF_FLAG_FD_CLOEXEC is always added. */
static PyObject *
pybpf_perf_event_open(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"attr", "pid", "cpu", "group_fd", "flags", NULL};
    PyObject *attr_obj;
    Py_buffer view;
    int pid, cpu, group_fd = -1, fd, err;
    unsigned long flags = 0;
    char attr[256];

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oii|ik:perf_event_open", kwlist, &attr_obj,
                                     &pid, &cpu, &group_fd, &flags))
        return NULL;
    if (pybpf_get_buffer(attr_obj, &view, -1, "attr", 0) < 0)
        return NULL;
    if (view.len < PERF_ATTR_SIZE_VER0 || view.len > (Py_ssize_t)sizeof(attr)) {
        PyErr_Format(PyExc_ValueError, "attr must be %d to %zu bytes, got %zd",
                     PERF_ATTR_SIZE_VER0, sizeof(attr), view.len);
        PyBuffer_Release(&view);
        return NULL;
    }
    memset(attr, 0, sizeof(attr));
    memcpy(attr, view.buf, view.len);
    PyBuffer_Release(&view);
    Py_BEGIN_ALLOW_THREADS
    fd = (int)syscall(__NR_perf_event_open, attr, pid, cpu, group_fd,
                      flags | PERF_FLAG_FD_CLOEXEC);
    err = fd < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (fd < 0)
        return pybpf_err_with(MOD_STATE(mod), NULL, err, "perf_event_open", NULL,
                              err == ENOENT || err == EOPNOTSUPP
                                  ? "this event does not exist on this machine"
                              : err == EACCES || err == EPERM
                                  ? "needs CAP_PERFMON, or a lower kernel.perf_event_paranoid"
                              : err == EINVAL ? "invalid attribute for this event type" : NULL);
    if (fd == 0 && (fd = pybpf_adopt_fd(fd, 1, "perf event")) < 0)
        return NULL;
    return PyLong_FromLong(fd);
}

/* perf_event_ioctl(fd, request, arg=0): PERF_EVENT_IOC_* with an int argument. */
static PyObject *
pybpf_perf_event_ioctl(PyObject *mod, PyObject *args)
{
    int fd, r, err;
    unsigned long req, arg = 0;

    if (!PyArg_ParseTuple(args, "ik|k:perf_event_ioctl", &fd, &req, &arg))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = ioctl(fd, req, arg);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), err, "perf event ioctl", NULL);
    return PyLong_FromLong(r);
}

/* xdp_attach(ifindex, prog_fd, flags=0, old_prog_fd=-1) / xdp_detach(ifindex, flags=0,
 * old_prog_fd=-1): one body, since libbpf's bpf_xdp_detach is bpf_xdp_attach with prog_fd -1;
 * only the signature differs. */
static PyObject *
pybpf_xdp_set(PyObject *mod, PyObject *args, PyObject *kwds, int detach)
{
    static char *attach_kw[] = {"ifindex", "prog_fd", "flags", "old_prog_fd", NULL};
    static char *detach_kw[] = {"ifindex", "flags", "old_prog_fd", NULL};
    int ifindex, prog_fd = -1, old = -1, r;
    unsigned int flags = 0;
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts);

    if (detach ? !PyArg_ParseTupleAndKeywords(args, kwds, "i|Ii:xdp_detach", detach_kw,
                                              &ifindex, &flags, &old)
               : !PyArg_ParseTupleAndKeywords(args, kwds, "ii|Ii:xdp_attach", attach_kw,
                                              &ifindex, &prog_fd, &flags, &old))
        return NULL;
    if (old >= 0)
        opts.old_prog_fd = old;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_xdp_attach(ifindex, prog_fd, flags, &opts);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), -r, detach ? "xdp detach" : "xdp attach", NULL);
    Py_RETURN_NONE;
}

static PyObject *
pybpf_xdp_attach(PyObject *mod, PyObject *args, PyObject *kwds)
{
    return pybpf_xdp_set(mod, args, kwds, 0);
}

static PyObject *
pybpf_xdp_detach(PyObject *mod, PyObject *args, PyObject *kwds)
{
    return pybpf_xdp_set(mod, args, kwds, 1);
}

static PyObject *
pybpf_xdp_query(PyObject *mod, PyObject *args)
{
    int ifindex, flags = 0, r;
    LIBBPF_OPTS(bpf_xdp_query_opts, opts);

    if (!PyArg_ParseTuple(args, "i|i:xdp_query", &ifindex, &flags))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_xdp_query(ifindex, flags, &opts);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), -r, "xdp query", NULL);
    return Py_BuildValue("{sIsIsIsIsIsKsI}", "prog_id", opts.prog_id, "drv_prog_id",
                         opts.drv_prog_id, "hw_prog_id", opts.hw_prog_id, "skb_prog_id",
                         opts.skb_prog_id, "attach_mode", (unsigned int)opts.attach_mode,
                         "feature_flags", (unsigned long long)opts.feature_flags,
                         "xdp_zc_max_segs", opts.xdp_zc_max_segs);
}

/* tc_hook_create(ifindex, attach_point) -> bool: True if this call created the clsact qdisc,
 * False if it existed (EEXIST), so the caller knows whether it must remove it later.
 * tc_hook_destroy(ifindex, attach_point) shares the body. */
static PyObject *
pybpf_tc_hook(PyObject *mod, PyObject *args, int create)
{
    int ifindex, point, r;
    LIBBPF_OPTS(bpf_tc_hook, hook);

    if (!PyArg_ParseTuple(args, create ? "ii:tc_hook_create" : "ii:tc_hook_destroy", &ifindex,
                          &point))
        return NULL;
    hook.ifindex = ifindex;
    hook.attach_point = point;
    Py_BEGIN_ALLOW_THREADS
    r = create ? bpf_tc_hook_create(&hook) : bpf_tc_hook_destroy(&hook);
    Py_END_ALLOW_THREADS
    if (create && r == -EEXIST)
        Py_RETURN_FALSE;
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), -r, create ? "tc hook create" : "tc hook destroy",
                         NULL);
    if (create)
        Py_RETURN_TRUE;
    Py_RETURN_NONE;
}

static PyObject *
pybpf_tc_hook_create(PyObject *mod, PyObject *args)
{
    return pybpf_tc_hook(mod, args, 1);
}

static PyObject *
pybpf_tc_hook_destroy(PyObject *mod, PyObject *args)
{
    return pybpf_tc_hook(mod, args, 0);
}

/* tc_attach(ifindex, attach_point, prog_fd, handle=0, priority=0, replace=False)
 * -> (handle, priority, prog_id) as the kernel chose them. */
static PyObject *
pybpf_tc_attach(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ifindex", "attach_point", "prog_fd", "handle", "priority",
                             "replace", NULL};
    int ifindex, point, prog_fd, replace = 0, r;
    unsigned int handle = 0, prio = 0;
    LIBBPF_OPTS(bpf_tc_hook, hook);
    LIBBPF_OPTS(bpf_tc_opts, opts);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iii|IIp:tc_attach", kwlist, &ifindex, &point,
                                     &prog_fd, &handle, &prio, &replace))
        return NULL;
    hook.ifindex = ifindex;
    hook.attach_point = point;
    opts.prog_fd = prog_fd;
    opts.handle = handle;
    opts.priority = prio;
    opts.flags = replace ? BPF_TC_F_REPLACE : 0;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_tc_attach(&hook, &opts);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err_with(MOD_STATE(mod), NULL, -r, "tc attach", NULL,
                              r == -EEXIST ? "a filter with this handle and priority exists; "
                                             "pass replace=True or other values"
                                           : NULL);
    return Py_BuildValue("(III)", opts.handle, opts.priority, opts.prog_id);
}

/* tc_detach(ifindex, attach_point, handle, priority) and tc_query(same) -> prog_id, or None
 * if no such filter: the same filter address, a different libbpf call. */
static PyObject *
pybpf_tc_filter(PyObject *mod, PyObject *args, int query)
{
    int ifindex, point, r;
    unsigned int handle, prio;
    LIBBPF_OPTS(bpf_tc_hook, hook);
    LIBBPF_OPTS(bpf_tc_opts, opts);

    if (!PyArg_ParseTuple(args, query ? "iiII:tc_query" : "iiII:tc_detach", &ifindex, &point,
                          &handle, &prio))
        return NULL;
    hook.ifindex = ifindex;
    hook.attach_point = point;
    opts.handle = handle;
    opts.priority = prio;
    Py_BEGIN_ALLOW_THREADS
    r = query ? bpf_tc_query(&hook, &opts) : bpf_tc_detach(&hook, &opts);
    Py_END_ALLOW_THREADS
    if (query && (r == -ENOENT || r == -EINVAL))
        Py_RETURN_NONE;
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), -r, query ? "tc query" : "tc detach", NULL);
    if (query)
        return PyLong_FromUnsignedLong(opts.prog_id);
    Py_RETURN_NONE;
}

static PyObject *
pybpf_tc_detach(PyObject *mod, PyObject *args)
{
    return pybpf_tc_filter(mod, args, 0);
}

static PyObject *
pybpf_tc_query(PyObject *mod, PyObject *args)
{
    return pybpf_tc_filter(mod, args, 1);
}

/* prog_attach(prog_fd, target_fd, attach_type, flags=0, replace_prog_fd=-1, relative_fd=0,
 * relative_id=0, expected_revision=0): BPF_PROG_ATTACH (cgroups without links, sockmaps,
 * flow dissector, lirc, tcx without links). */
static PyObject *
pybpf_prog_attach(PyObject *mod, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"prog_fd", "target_fd", "attach_type", "flags", "replace_prog_fd",
                             "relative_fd", "relative_id", "expected_revision", NULL};
    int prog_fd, target, replace = -1, relative_fd = 0, r, err;
    unsigned int type, flags = 0, relative_id = 0;
    unsigned long long rev = 0;
    LIBBPF_OPTS(bpf_prog_attach_opts, opts);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iiI|IiiIK:prog_attach", kwlist, &prog_fd,
                                     &target, &type, &flags, &replace, &relative_fd,
                                     &relative_id, &rev))
        return NULL;
    opts.flags = flags;
    if (replace >= 0)
        opts.replace_prog_fd = replace;
    opts.relative_fd = relative_fd;
    opts.relative_id = relative_id;
    opts.expected_revision = rev;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_attach_opts(prog_fd, target, (enum bpf_attach_type)type, &opts);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), err, "prog attach", NULL);
    Py_RETURN_NONE;
}

static PyObject *
pybpf_prog_detach(PyObject *mod, PyObject *args)
{
    int prog_fd, target, r, err;
    unsigned int type;

    if (!PyArg_ParseTuple(args, "iiI:prog_detach", &prog_fd, &target, &type))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_detach2(prog_fd, target, (enum bpf_attach_type)type);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), err, "prog detach", NULL);
    Py_RETURN_NONE;
}

/* prog_query(target, attach_type, query_flags=0) -> dict(attach_flags, revision, prog_ids,
 * prog_attach_flags, link_ids, link_attach_flags).  target is an fd (cgroup, netns) or an
 * ifindex (tcx). */
static PyObject *
pybpf_prog_query(PyObject *mod, PyObject *args)
{
    int target, r, err;
    unsigned int type, qflags = 0, cnt;
    __u32 ids[256], aflags[256], lids[256], laflags[256];
    PyObject *d = NULL, *l1 = NULL, *l2 = NULL, *l3 = NULL, *l4 = NULL;
    LIBBPF_OPTS(bpf_prog_query_opts, opts);

    if (!PyArg_ParseTuple(args, "iI|I:prog_query", &target, &type, &qflags))
        return NULL;
    memset(lids, 0, sizeof(lids));
    memset(laflags, 0, sizeof(laflags));
    opts.query_flags = qflags;
    opts.prog_ids = ids;
    opts.prog_attach_flags = aflags;
    opts.count = 256;
    /* link ids are only understood by mprog hooks (tcx, netkit, cgroup on newer kernels);
     * the kernel ignores them elsewhere. */
    opts.link_ids = lids;
    opts.link_attach_flags = laflags;
    Py_BEGIN_ALLOW_THREADS
    r = bpf_prog_query_opts(target, (enum bpf_attach_type)type, &opts);
    err = r < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    if (r < 0)
        return pybpf_err(MOD_STATE(mod), err, "prog query", NULL);
    cnt = opts.count < 256 ? opts.count : 256;
    if (!(l1 = pybpf_uint_list(ids, cnt, 4)) || !(l2 = pybpf_uint_list(aflags, cnt, 4)) ||
        !(l3 = pybpf_uint_list(lids, cnt, 4)) || !(l4 = pybpf_uint_list(laflags, cnt, 4)))
        goto fail;
    d = Py_BuildValue("{sIsKsOsOsOsO}", "attach_flags", opts.attach_flags, "revision",
                      (unsigned long long)opts.revision, "prog_ids", l1, "prog_attach_flags", l2,
                      "link_ids", l3, "link_attach_flags", l4);
fail:
    Py_XDECREF(l1);
    Py_XDECREF(l2);
    Py_XDECREF(l3);
    Py_XDECREF(l4);
    return d;
}

static PyMethodDef pybpf_link_functions[] = {
    {"link_next_id", pybpf_link_next_id, METH_O,
     PyDoc_STR("Return the next link id after start, or None at the end.")},
    {"perf_event_open", (PyCFunction)(void (*)(void))pybpf_perf_event_open,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("perf_event_open(attr, pid, cpu, group_fd=-1, flags=0) -> fd (caller owns).")},
    {"perf_event_ioctl", pybpf_perf_event_ioctl, METH_VARARGS,
     PyDoc_STR("perf_event_ioctl(fd, request, arg=0) -> int.")},
    {"xdp_attach", (PyCFunction)(void (*)(void))pybpf_xdp_attach, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("xdp_attach(ifindex, prog_fd, flags=0, old_prog_fd=-1): netlink XDP attach.")},
    {"xdp_detach", (PyCFunction)(void (*)(void))pybpf_xdp_detach, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("xdp_detach(ifindex, flags=0, old_prog_fd=-1): netlink XDP detach.")},
    {"xdp_query", pybpf_xdp_query, METH_VARARGS,
     PyDoc_STR("xdp_query(ifindex, flags=0) -> dict of attached program ids and mode.")},
    {"tc_hook_create", pybpf_tc_hook_create, METH_VARARGS,
     PyDoc_STR("tc_hook_create(ifindex, attach_point) -> True if the qdisc was created.")},
    {"tc_hook_destroy", pybpf_tc_hook_destroy, METH_VARARGS,
     PyDoc_STR("tc_hook_destroy(ifindex, attach_point).")},
    {"tc_attach", (PyCFunction)(void (*)(void))pybpf_tc_attach, METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("tc_attach(ifindex, attach_point, prog_fd, handle=0, priority=0, replace=False) "
               "-> (handle, priority, prog_id).")},
    {"tc_detach", pybpf_tc_detach, METH_VARARGS,
     PyDoc_STR("tc_detach(ifindex, attach_point, handle, priority).")},
    {"tc_query", pybpf_tc_query, METH_VARARGS,
     PyDoc_STR("tc_query(ifindex, attach_point, handle, priority) -> prog_id or None.")},
    {"prog_attach", (PyCFunction)(void (*)(void))pybpf_prog_attach,
     METH_VARARGS | METH_KEYWORDS, PyDoc_STR("BPF_PROG_ATTACH.")},
    {"prog_detach", pybpf_prog_detach, METH_VARARGS,
     PyDoc_STR("prog_detach(prog_fd, target_fd, attach_type): BPF_PROG_DETACH.")},
    {"prog_query", pybpf_prog_query, METH_VARARGS,
     PyDoc_STR("prog_query(target, attach_type, query_flags=0) -> dict.")},
    {NULL, NULL, 0, NULL},
};

static int
pybpf_link_init(PyObject *m, pybpf_state *st)
{
    return pybpf_add_type(m, &Link_spec, &st->Link_Type, pybpf_link_functions);
}
