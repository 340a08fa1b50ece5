/* PerfBuffer reader over a BPF_MAP_TYPE_PERF_EVENT_ARRAY (libbpf perf_buffer), one perf
 * ring per possible CPU.  Built on the reader base of ringbuf.c (included before this file):
 * PyBPF_Reader, the poll loop and wait, record delivery through a pybpf_sink, close and
 * dealloc.  Our own epoll fd nests libbpf's; poll waits without the GIL and consumes with it.
 *
 * Differences from the ring buffer: libbpf's sample callback returns void, so a callback that
 * raises or asks to stop cannot stop perf_buffer__consume.  The records that follow in that
 * consume are copied to a backlog and delivered first by the next poll/consume: nothing is
 * lost and order per CPU is kept.  The kernel reports overflow as PERF_RECORD_LOST records:
 * their counts are summed per CPU and passed to the lost callback.
 *
 * Perf pads raw samples: a record of n bytes arrives as round_up(n + 4, 8) - 4 bytes (the
 * tail is zero).  Codecs decode the prefix.
 */

typedef struct {
    PyBPF_Reader r;              /* r.stop: a callback raised or returned < 0, so the rest of
                                  * this consume goes to the backlog */
    struct perf_buffer *pb;
    int ncpu;
    unsigned long long *lost;    /* per possible CPU, PyMem */
    pybpf_sink sink;             /* the callback and batch, for every CPU */
    PyObject *lost_callback;     /* strong or NULL */
    PyObject *backlog;           /* list of (cpu, bytes) held back after a stop */
    PyObject *cpus;              /* tuple of ints 0..ncpu-1 (avoid an int per record) */
} PyBPF_PerfBuffer;

static void
PerfBuffer_release(PyBPF_FdObject *o)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)o;

    if (self->pb && !self->r.pinned)
        perf_buffer__free(self->pb);
    self->pb = NULL;
    pybpf_reader_release_efd(&self->r);
}

static PyObject *
pybpf_perf_cpu(PyBPF_PerfBuffer *self, int cpu)
{
    if (cpu >= 0 && cpu < self->ncpu)
        return Py_NewRef(PyTuple_GET_ITEM(self->cpus, cpu));
    return PyLong_FromLong(cpu);
}

/* Deliver one record now (or add it to the batch); returns 0, or -1 with an exception set or
 * a stop requested.  Batches are handed over every PYBPF_CHUNK records from inside libbpf's
 * loop (a CPU's buffer can hold millions of records; a batch should stay cache-sized). */
static int
pybpf_perf_deliver(PyBPF_PerfBuffer *self, int cpu, void *data, Py_ssize_t size,
                   PyObject *bytes)
{
    pybpf_sink *s = &self->sink;
    PyObject *c = NULL;
    int r;

    if (s->mode == PYBPF_EV_BYTES || s->mode == PYBPF_EV_VIEW) { /* batches get no cpu */
        c = pybpf_perf_cpu(self, cpu);
        if (!c)
            return -1;
    }
    r = pybpf_sink_deliver(&self->r, s, c, data, size, bytes);
    Py_XDECREF(c);
    if (r != 0)
        return -1;
    if (pybpf_sink_full(s))
        return pybpf_sink_flush(s);
    return 0;
}

static void
pybpf_perf_sample(void *ctx, int cpu, void *data, __u32 size)
{
    PyBPF_PerfBuffer *self = ctx;

    /* Inside perf_buffer__consume with the GIL held. */
    if (self->r.stop || self->r.base.closing) {
        PyObject *item = Py_BuildValue("(iy#)", cpu, (const char *)data, (Py_ssize_t)size);
        if (!item || PyList_Append(self->backlog, item) < 0) {
            /* Out of memory while an exception is pending: the record is lost. */
            PyErr_Clear();
        }
        Py_XDECREF(item);
        return;
    }
    if (pybpf_perf_deliver(self, cpu, data, size, NULL) < 0)
        self->r.stop = 1;
}

static void
pybpf_perf_lost(void *ctx, int cpu, __u64 cnt)
{
    PyBPF_PerfBuffer *self = ctx;
    PyObject *res;

    if (cpu >= 0 && cpu < self->ncpu)
        self->lost[cpu] += cnt;
    if (!self->lost_callback || self->r.stop || self->r.base.closing)
        return;
    res = PyObject_CallFunction(self->lost_callback, "iK", cpu, (unsigned long long)cnt);
    if (!res)
        self->r.stop = 1;
    Py_XDECREF(res);
}

/* Through pybpf_reader_consume (one at a time, per-consume state reset); max is not used. */
static Py_ssize_t
pybpf_perf_consume(PyBPF_Reader *reader, long max)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)reader;
    int r;
    Py_ssize_t i, n;
    size_t b, nbuf;

    /* First what an earlier stop held back. */
    n = PyList_GET_SIZE(self->backlog);
    if (n > 0) {
        PyObject *old = self->backlog;
        self->backlog = PyList_New(0);
        if (!self->backlog) {
            self->backlog = old;
            return -1;
        }
        for (i = 0; i < n; i++) {
            PyObject *item = PyList_GET_ITEM(old, i);
            if (self->r.stop) {
                if (PyList_Append(self->backlog, item) < 0)
                    break;
                continue;
            }
            if (pybpf_perf_deliver(self, PyLong_AsLong(PyTuple_GET_ITEM(item, 0)), NULL, 0,
                                   PyTuple_GET_ITEM(item, 1)) < 0)
                self->r.stop = 1;
        }
        Py_DECREF(old);
    }
    /* One CPU buffer at a time, delivering the batch after each, so a batch stays bounded. */
    nbuf = perf_buffer__buffer_cnt(self->pb);
    for (b = 0; b < nbuf && !self->r.stop; b++) {
        r = perf_buffer__consume_buffer(self->pb, b);
        if (r < 0 && r != -ENOENT && !PyErr_Occurred()) {
            pybpf_err(PYBPF_STATE(self), -r, "perf buffer consume", (PyObject *)self);
            return -1;
        }
        if (PyErr_Occurred())
            return -1;
        if (pybpf_sink_flush(&self->sink) < 0)
            return -1;
    }
    return self->r.count;
}

static PyObject *
PerfBuffer_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"map_fd", "callback", "lost_callback", "pages", "wakeup_events",
                             "mode", "item_size", NULL};
    pybpf_state *st = pybpf_state_from_type(tp);
    PyBPF_PerfBuffer *self;
    PyObject *cb, *lost_cb = Py_None;
    Py_ssize_t pages = 8, item = 0;
    int map_fd, wakeup = 1, mode = PYBPF_EV_BYTES, i, err;
    LIBBPF_OPTS(perf_buffer_opts, opts);

    if (!PyArg_ParseTupleAndKeywords(args, kw, "iO|Oniin:PerfBuffer", kwlist, &map_fd, &cb,
                                     &lost_cb, &pages, &wakeup, &mode, &item))
        return NULL;
    if (!PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "callback must be callable");
    if (lost_cb != Py_None && !PyCallable_Check(lost_cb))
        return PyErr_Format(PyExc_TypeError, "lost_callback must be callable or None");
    if (pages <= 0 || (pages & (pages - 1)))
        return PyErr_Format(PyExc_ValueError, "pages must be a power of two, got %zd", pages);
    if (wakeup < 1)
        return PyErr_Format(PyExc_ValueError, "wakeup_events must be >= 1, got %d", wakeup);
    if (mode < PYBPF_EV_BYTES || mode > PYBPF_EV_PACKED)
        return PyErr_Format(PyExc_ValueError, "unknown delivery mode %d", mode);
    if (mode == PYBPF_EV_PACKED && item <= 0)
        return PyErr_Format(PyExc_ValueError, "packed delivery needs a record size > 0");
    self = (PyBPF_PerfBuffer *)pybpf_reader_alloc(tp, "perf buffer", PerfBuffer_release);
    if (!self)
        return NULL;
    if (pybpf_sink_init(&self->sink, cb, mode, item) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->lost_callback = lost_cb == Py_None ? NULL : Py_NewRef(lost_cb);
    self->ncpu = libbpf_num_possible_cpus();
    if (self->ncpu < 0) {
        err = -self->ncpu;
        self->ncpu = 0;
        Py_DECREF(self);
        return pybpf_err(st, err, "possible cpus", NULL);
    }
    self->lost = PyMem_Calloc(self->ncpu, sizeof(*self->lost));
    self->cpus = PyTuple_New(self->ncpu);
    self->backlog = PyList_New(0);
    if (!self->lost || !self->cpus || !self->backlog) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        Py_DECREF(self);
        return NULL;
    }
    for (i = 0; i < self->ncpu; i++) {
        PyObject *v = PyLong_FromLong(i);
        if (!v) {
            Py_DECREF(self);
            return NULL;
        }
        PyTuple_SET_ITEM(self->cpus, i, v);
    }
    /* wakeup_events: the kernel wakes the reader after this many samples per CPU (libbpf
     * names it sample_period).  Larger batches fewer wakeups; records wait until then. */
    opts.sample_period = wakeup;
    /* perf_event_open per CPU + mmap: setup syscalls, GIL kept (object not shared yet). */
    self->pb = perf_buffer__new(map_fd, (size_t)pages, pybpf_perf_sample, pybpf_perf_lost, self,
                                &opts);
    if (!self->pb) {
        err = errno;
        Py_DECREF(self);
        return pybpf_err_with(st, NULL, err, "perf buffer open", NULL,
                              err == EINVAL ? "the map must be a BPF_MAP_TYPE_PERF_EVENT_ARRAY "
                                              "map and pages a power of two"
                                            : NULL);
    }
    if (pybpf_reader_open(&self->r, perf_buffer__epoll_fd(self->pb), EPOLLIN) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
PerfBuffer_poll(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    int ms;

    if (pybpf_timeout_arg(args, nargs, &ms) < 0)
        return NULL;
    return pybpf_reader_poll((PyBPF_Reader *)op, pybpf_perf_consume, ms, 0);
}

static PyObject *
PerfBuffer_consume(PyObject *op, PyObject *unused)
{
    return pybpf_reader_poll((PyBPF_Reader *)op, pybpf_perf_consume, 0, 0);
}

static PyObject *
PerfBuffer_get_lost(PyObject *op, void *c)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;
    PyObject *t;
    int i;

    /* The counters live with the buffers, which close() frees. */
    if (pybpf_check_open(&self->r.base) < 0)
        return NULL;
    if (!(t = PyTuple_New(self->ncpu)))
        return NULL;
    for (i = 0; i < self->ncpu; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->lost[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *
PerfBuffer_get_buffers(PyObject *op, void *c)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    if (!self->pb)
        return PyErr_Format(PyExc_ValueError, "operation on closed perf buffer");
    return PyLong_FromSize_t(perf_buffer__buffer_cnt(self->pb));
}

static PyObject *
PerfBuffer_repr(PyObject *op)
{
    return pybpf_reader_repr(op, "cpus", ((PyBPF_PerfBuffer *)op)->ncpu);
}

static int
PerfBuffer_traverse(PyObject *op, visitproc visit, void *arg)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    Py_VISIT(self->sink.callback);
    Py_VISIT(self->sink.batch);
    Py_VISIT(self->lost_callback);
    Py_VISIT(self->backlog);
    Py_VISIT(self->cpus);
    return pybpf_reader_traverse(op, visit, arg);
}

static int
PerfBuffer_clear(PyObject *op)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    /* Keep callback non-NULL (a consume may still run): None raises TypeError if called. */
    Py_XSETREF(self->sink.callback, Py_NewRef(Py_None));
    Py_CLEAR(self->lost_callback);
    Py_CLEAR(self->r.rec);
    return 0;
}

static void
PerfBuffer_free_own(PyObject *op)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    PyMem_Free(self->lost);
    self->lost = NULL;
    pybpf_sink_clear(&self->sink);
    Py_CLEAR(self->lost_callback);
    Py_CLEAR(self->backlog);
    Py_CLEAR(self->cpus);
}

static void
PerfBuffer_dealloc(PyObject *op)
{
    pybpf_reader_dealloc(op, PerfBuffer_free_own);
}

static PyMethodDef PerfBuffer_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))PerfBuffer_poll, METH_FASTCALL,
     PyDoc_STR("poll(timeout_ms=-1): consume what is there, else wait (GIL released) until "
               "samples arrive, the timeout passes or close() is called. Returns samples.")},
    {"consume", PerfBuffer_consume, METH_NOARGS,
     PyDoc_STR("Handle available samples of every CPU without waiting.")},
    {"close", pybpf_reader_close, METH_NOARGS,
     PyDoc_STR("Free the per-CPU buffers (idempotent); wakes a poll() in another thread.")},
    {"fileno", pybpf_fd_fileno, METH_NOARGS,
     PyDoc_STR("Return the epoll fd, readable when a CPU's buffer has data.")},
    {"__enter__", pybpf_fd_enter_ctx, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))pybpf_fd_exit_ctx, METH_FASTCALL, NULL},
    {NULL},
};

static PyGetSetDef PerfBuffer_getsets[] = {
    PYBPF_FD_GETSETS,
    {"lost", PerfBuffer_get_lost, NULL,
     PyDoc_STR("Samples the kernel dropped, per possible CPU (tuple), as reported so far."),
     NULL},
    {"buffers", PerfBuffer_get_buffers, NULL, PyDoc_STR("Number of per-CPU buffers."), NULL},
    {NULL},
};

static PyType_Slot PerfBuffer_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("Reader of a BPF perf event array (libbpf perf_buffer).")},
    {Py_tp_new, PerfBuffer_new},
    {Py_tp_dealloc, PerfBuffer_dealloc},
    {Py_tp_finalize, pybpf_fd_finalize},
    {Py_tp_traverse, PerfBuffer_traverse},
    {Py_tp_clear, PerfBuffer_clear},
    {Py_tp_repr, PerfBuffer_repr},
    {Py_tp_methods, PerfBuffer_methods},
    {Py_tp_getset, PerfBuffer_getsets},
    {Py_tp_members, pybpf_reader_members},
    {0, NULL},
};

static PyType_Spec PerfBuffer_spec = {
    .name = "bpf._bpf.PerfBuffer",
    .basicsize = sizeof(PyBPF_PerfBuffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = PerfBuffer_slots,
};

static int
pybpf_perfbuf_init(PyObject *m, pybpf_state *st)
{
    return pybpf_reader_add_type(m, &PerfBuffer_spec, "PerfBuffer", &st->PerfBuffer_Type);
}
