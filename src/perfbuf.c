/* PerfBuffer reader over a BPF_MAP_TYPE_PERF_EVENT_ARRAY (libbpf perf_buffer), one perf
 * ring per possible CPU.  Shares the wait/close/zero-copy machinery of ringbuf.c (included
 * before this file): our own epoll fd nests libbpf's, poll waits without the GIL and consumes
 * with it.
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
    PyBPF_FdObject base;         /* fd: our epoll fd (owned) */
    struct perf_buffer *pb;
    int efd;
    int ncpu;
    unsigned long long *lost;    /* per possible CPU, PyMem */
    PyObject *callback;          /* strong */
    PyObject *lost_callback;     /* strong or NULL */
    PyObject *batch;             /* list in BATCH mode */
    pybpf_packed packed;         /* PACKED mode */
    PyObject *backlog;           /* list of (cpu, bytes) held back after a stop */
    PyObject *cpus;              /* tuple of ints 0..ncpu-1 (avoid an int per record) */
    PyObject *record_type;
    PyBPF_Record *rec;
    int mode;
    int stop;                    /* a callback raised or returned < 0: divert to backlog */
    int pinned;
    int busy;                    /* inside a consume: only one at a time (see ringbuf.c) */
    Py_ssize_t count;
} PyBPF_PerfBuffer;

static void
PerfBuffer_release(PyBPF_FdObject *o)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)o;

    if (self->pb && !self->pinned)
        perf_buffer__free(self->pb);
    self->pb = NULL;
    if (self->efd >= 0)
        close(self->efd);
    self->efd = -1;
}

static PyObject *
pybpf_perf_cpu(PyBPF_PerfBuffer *self, int cpu)
{
    if (cpu >= 0 && cpu < self->ncpu)
        return Py_NewRef(PyTuple_GET_ITEM(self->cpus, cpu));
    return PyLong_FromLong(cpu);
}

static int pybpf_perf_flush(PyBPF_PerfBuffer *self);

/* Deliver one record now; returns 0, or -1 with an exception set / stop requested.
 * Batches are handed over every PYBPF_CHUNK records from inside libbpf's loop (a CPU's
 * buffer can hold millions of records; a batch should stay cache-sized). */
static int
pybpf_perf_deliver(PyBPF_PerfBuffer *self, int cpu, void *data, Py_ssize_t size,
                   PyObject *bytes)
{
    PyObject *res, *c;

    self->count++;
    if (self->mode == PYBPF_EV_PACKED) {
        if (bytes) {
            data = PyBytes_AS_STRING(bytes);
            size = PyBytes_GET_SIZE(bytes);
        }
        if (pybpf_packed_add(&self->packed, data, size) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        if (self->packed.len >= PYBPF_CHUNK * self->packed.item)
            return pybpf_perf_flush(self);
        return 0;
    }
    if (self->mode == PYBPF_EV_BATCH) {
        PyObject *b = bytes ? Py_NewRef(bytes) : PyBytes_FromStringAndSize(data, size);
        int r;
        if (!b)
            return -1;
        r = PyList_Append(self->batch, b);
        Py_DECREF(b);
        if (r == 0 && PyList_GET_SIZE(self->batch) >= PYBPF_CHUNK)
            return pybpf_perf_flush(self);
        return r;
    }
    c = pybpf_perf_cpu(self, cpu);
    if (!c)
        return -1;
    if (self->mode == PYBPF_EV_VIEW && !bytes) {
        res = pybpf_call_with_view(self->callback, &self->rec, self->record_type, data, size, c,
                                   &self->pinned);
    } else {
        PyObject *args[2] = {c, bytes ? Py_NewRef(bytes) : PyBytes_FromStringAndSize(data, size)};
        if (!args[1]) {
            Py_DECREF(c);
            return -1;
        }
        res = PyObject_Vectorcall(self->callback, args, 2, NULL);
        Py_DECREF(args[1]);
    }
    Py_DECREF(c);
    if (!res)
        return -1;
    if (pybpf_cb_wants_stop(res)) {
        Py_DECREF(res);
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

static void
pybpf_perf_sample(void *ctx, int cpu, void *data, __u32 size)
{
    PyBPF_PerfBuffer *self = ctx;

    /* Inside perf_buffer__consume with the GIL held. */
    if (self->stop || self->base.closing) {
        PyObject *item = Py_BuildValue("(iy#)", cpu, (const char *)data, (Py_ssize_t)size);
        if (!item || PyList_Append(self->backlog, item) < 0) {
            /* Out of memory while an exception is pending: the record is lost. */
            PyErr_Clear();
        }
        Py_XDECREF(item);
        return;
    }
    if (pybpf_perf_deliver(self, cpu, data, size, NULL) < 0)
        self->stop = 1;
}

static void
pybpf_perf_lost(void *ctx, int cpu, __u64 cnt)
{
    PyBPF_PerfBuffer *self = ctx;
    PyObject *res;

    if (cpu >= 0 && cpu < self->ncpu)
        self->lost[cpu] += cnt;
    if (!self->lost_callback || self->stop || self->base.closing)
        return;
    res = PyObject_CallFunction(self->lost_callback, "iK", cpu, (unsigned long long)cnt);
    if (!res)
        self->stop = 1;
    Py_XDECREF(res);
}

static int
pybpf_perf_flush(PyBPF_PerfBuffer *self)
{
    if (self->mode == PYBPF_EV_PACKED)
        return pybpf_packed_flush(&self->packed, self->callback);
    if (self->mode == PYBPF_EV_BATCH && PyList_GET_SIZE(self->batch) > 0) {
        PyObject *batch = self->batch, *res;
        self->batch = PyList_New(0);
        if (!self->batch) {
            self->batch = batch;
            return -1;
        }
        res = PyObject_CallOneArg(self->callback, batch);
        Py_DECREF(batch);
        if (!res)
            return -1;
        Py_DECREF(res);
    }
    return 0;
}

static Py_ssize_t pybpf_perf_consume_locked(PyBPF_PerfBuffer *self);

static Py_ssize_t
pybpf_perf_consume(PyBPF_PerfBuffer *self)
{
    Py_ssize_t n;

    if (pybpf_not_busy(self->busy, "perf buffer") < 0)
        return -1;
    self->busy = 1;
    n = pybpf_perf_consume_locked(self);
    self->busy = 0;
    return n;
}

static Py_ssize_t
pybpf_perf_consume_locked(PyBPF_PerfBuffer *self)
{
    int r;
    Py_ssize_t i, n;
    size_t b, nbuf;

    self->count = 0;
    self->stop = 0;
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
            if (self->stop) {
                if (PyList_Append(self->backlog, item) < 0)
                    break;
                continue;
            }
            if (pybpf_perf_deliver(self, PyLong_AsLong(PyTuple_GET_ITEM(item, 0)), NULL, 0,
                                   PyTuple_GET_ITEM(item, 1)) < 0)
                self->stop = 1;
        }
        Py_DECREF(old);
    }
    /* One CPU buffer at a time, delivering the batch after each, so a batch stays bounded. */
    nbuf = perf_buffer__buffer_cnt(self->pb);
    for (b = 0; b < nbuf && !self->stop; b++) {
        r = perf_buffer__consume_buffer(self->pb, b);
        if (r < 0 && r != -ENOENT && !PyErr_Occurred()) {
            pybpf_err(PYBPF_STATE(self), -r, "perf buffer consume", (PyObject *)self);
            return -1;
        }
        if (PyErr_Occurred())
            return -1;
        if (pybpf_perf_flush(self) < 0)
            return -1;
    }
    return self->count;
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
    int map_fd, wakeup = 1, mode = PYBPF_EV_BYTES, ep, efd, i, err;
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
    self = (PyBPF_PerfBuffer *)tp->tp_alloc(tp, 0);
    if (!self)
        return NULL;
    pybpf_fd_init(&self->base, -1, 0, "perf buffer");
    self->efd = -1;
    self->mode = mode;
    self->packed.item = item;
    self->callback = Py_NewRef(cb);
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
    self->batch = PyList_New(0);
    self->record_type = pybpf_record_type(st->RingBuffer_Type);
    if (!self->lost || !self->cpus || !self->backlog || !self->batch || !self->record_type) {
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
    ep = pybpf_events_epoll(st, perf_buffer__epoll_fd(self->pb), EPOLLIN, &efd);
    if (ep < 0) {
        perf_buffer__free(self->pb);
        self->pb = NULL;
        Py_DECREF(self);
        return NULL;
    }
    pybpf_fd_init(&self->base, ep, 1, "perf buffer");
    self->efd = efd;
    self->base.release = PerfBuffer_release;
    return (PyObject *)self;
}

static PyObject *
PerfBuffer_poll(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;
    Py_ssize_t n;
    double deadline = 0;
    int ms, w;

    if (pybpf_timeout_arg(args, nargs, &ms) < 0)
        return NULL;
    if (pybpf_enter(&self->base) < 0)
        return NULL;
    n = pybpf_perf_consume(self);
    while (n == 0 && ms != 0 && !self->stop) {
        w = pybpf_events_wait(&self->base, ms, &deadline);
        if (w <= 0) {
            n = w;
            break;
        }
        n = pybpf_perf_consume(self); /* 0 when only lost records came in: wait again */
    }
    pybpf_leave(&self->base);
    if (n < 0)
        return NULL;
    return PyLong_FromSsize_t(n);
}

static PyObject *
PerfBuffer_consume(PyObject *op, PyObject *unused)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;
    Py_ssize_t n;

    if (pybpf_enter(&self->base) < 0)
        return NULL;
    n = pybpf_perf_consume(self);
    pybpf_leave(&self->base);
    if (n < 0)
        return NULL;
    return PyLong_FromSsize_t(n);
}

static PyObject *
PerfBuffer_close(PyObject *op, PyObject *unused)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    return pybpf_events_close(&self->base, self->efd);
}

static PyObject *
PerfBuffer_get_lost(PyObject *op, void *c)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;
    PyObject *t = PyTuple_New(self->ncpu);
    int i;

    if (!t)
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
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    if (self->base.fd < 0)
        return PyUnicode_FromFormat("<%s closed>", Py_TYPE(op)->tp_name);
    return PyUnicode_FromFormat("<%s cpus=%d fd=%d>", Py_TYPE(op)->tp_name, self->ncpu,
                                self->base.fd);
}

static int
PerfBuffer_traverse(PyObject *op, visitproc visit, void *arg)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    Py_VISIT(self->callback);
    Py_VISIT(self->lost_callback);
    Py_VISIT(self->batch);
    Py_VISIT(self->backlog);
    Py_VISIT(self->cpus);
    Py_VISIT(self->record_type);
    Py_VISIT(self->rec);
    return pybpf_fd_traverse(op, visit, arg);
}

static int
PerfBuffer_clear(PyObject *op)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;

    /* Keep callback non-NULL (a consume may still run): None raises TypeError if called. */
    Py_XSETREF(self->callback, Py_NewRef(Py_None));
    Py_CLEAR(self->lost_callback);
    Py_CLEAR(self->rec);
    return 0;
}

static void
PerfBuffer_dealloc(PyObject *op)
{
    PyBPF_PerfBuffer *self = (PyBPF_PerfBuffer *)op;
    PyTypeObject *tp = Py_TYPE(op);

    if (PyObject_CallFinalizerFromDealloc(op) < 0)
        return;
    PyObject_GC_UnTrack(op);
    if (self->base.fd >= 0 || self->base.release)
        pybpf_fd_release(&self->base);
    PyMem_Free(self->lost);
    self->lost = NULL;
    PyMem_Free(self->packed.buf);
    self->packed.buf = NULL;
    Py_CLEAR(self->callback);
    Py_CLEAR(self->lost_callback);
    Py_CLEAR(self->batch);
    Py_CLEAR(self->backlog);
    Py_CLEAR(self->cpus);
    Py_CLEAR(self->record_type);
    Py_CLEAR(self->rec);
    if (self->base.weakreflist)
        PyObject_ClearWeakRefs(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef PerfBuffer_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))PerfBuffer_poll, METH_FASTCALL,
     PyDoc_STR("poll(timeout_ms=-1): consume what is there, else wait (GIL released) until "
               "samples arrive, the timeout passes or close() is called. Returns samples.")},
    {"consume", PerfBuffer_consume, METH_NOARGS,
     PyDoc_STR("Handle available samples of every CPU without waiting.")},
    {"close", PerfBuffer_close, METH_NOARGS,
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

static PyMemberDef PerfBuffer_members[] = {
    PYBPF_FD_MEMBERS,
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
    {Py_tp_members, PerfBuffer_members},
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
    st->PerfBuffer_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &PerfBuffer_spec, NULL);
    if (!st->PerfBuffer_Type ||
        PyModule_AddObjectRef(m, "PerfBuffer", (PyObject *)st->PerfBuffer_Type) < 0)
        return -1;
    return 0;
}
