/* RingBuffer (kernel -> user) and UserRingBuffer (user -> kernel), plus the reader base the
 * perf buffer reader (perfbuf.c, included after this file) shares: the zero-copy record
 * exporter, record delivery (pybpf_sink), the blocking wait and poll loop, close, dealloc.
 *
 * Shape of a reader.  libbpf's ring_buffer / perf_buffer own an epoll fd holding the map (or
 * per-CPU perf) fds.  We do not call ring_buffer__poll: it cannot be woken by close() from
 * another thread and it gives up on EINTR.  Instead each reader owns a second epoll fd (the
 * object's fd, what fileno() returns) holding libbpf's epoll fd (nested epoll: readable when
 * any ring is) and an eventfd that close() writes to wake a blocked poll.  poll() waits on it
 * with the GIL released, then consumes with the GIL *held*: consuming only reads the shared
 * mmap and makes no syscall, so it cannot block, and holding the GIL saves a release/acquire
 * pair per record around the Python callback.
 *
 * Lifetime: the libbpf structure is freed by the fd base's release hook, which runs only when
 * no call is in flight (pybpf_enter/pybpf_leave), so close() from a callback or from another
 * thread never frees the rings under a running consume.  If a zero-copy view of ring memory
 * escaped its callback (see PyBPF_Record) the release hook leaks the mapping instead of
 * unmapping memory a live memoryview points into.
 */

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>

#define PYBPF_WAKE_TAG UINT64_MAX /* epoll data of the close() eventfd */

/* ---- the zero-copy record: a buffer exporter whose pointer is cleared after use ------------
 * A memoryview keeps the raw pointer it got from getbuffer, so clearing our pointer is not
 * enough: after the callback we release() the memoryview we handed out (later access raises
 * ValueError) and then check that nothing else still holds a buffer from us (a slice or a
 * numpy array made from the view).  If something does we raise BufferError and pin the ring
 * memory for the rest of the process rather than let it be read after being unmapped. */

typedef struct {
    PyObject_HEAD
    char *ptr;            /* NULL once invalid */
    Py_ssize_t len;
    Py_ssize_t exports;   /* buffers handed out and not yet released */
    int readonly;
    PyObject *owner;      /* UserRingBuffer for samples (strong), NULL for records */
} PyBPF_Record;

static int
Record_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    PyBPF_Record *r = (PyBPF_Record *)op;

    if (!r->ptr) {
        PyErr_SetString(PyExc_ValueError,
                        r->owner ? "user ring buffer sample already submitted or discarded"
                                 : "zero-copy record used after its callback returned; "
                                   "copy it (bytes(record)) inside the callback");
        return -1;
    }
    if (PyBuffer_FillInfo(view, op, r->ptr, r->len, r->readonly, flags) < 0)
        return -1;
    r->exports++;
    return 0;
}

static void
Record_releasebuffer(PyObject *op, Py_buffer *view)
{
    ((PyBPF_Record *)op)->exports--;
}

static Py_ssize_t
Record_len(PyObject *op)
{
    PyBPF_Record *r = (PyBPF_Record *)op;

    if (!r->ptr) {
        PyErr_SetString(PyExc_ValueError, "record is no longer valid");
        return -1;
    }
    return r->len;
}

static PyObject *
Record_tobytes(PyObject *op, PyObject *unused)
{
    PyBPF_Record *r = (PyBPF_Record *)op;

    if (Record_len(op) < 0)
        return NULL;
    return PyBytes_FromStringAndSize(r->ptr, r->len);
}

/* r[i] -> int, r[a:b] -> bytes (a copy), like bytes. */
static PyObject *
Record_subscript(PyObject *op, PyObject *item)
{
    PyObject *b = Record_tobytes(op, NULL), *res;

    if (!b)
        return NULL;
    res = PyObject_GetItem(b, item);
    Py_DECREF(b);
    return res;
}

static PyObject *
Record_repr(PyObject *op)
{
    PyBPF_Record *r = (PyBPF_Record *)op;

    if (!r->ptr)
        return PyUnicode_FromFormat("<%s released>", Py_TYPE(op)->tp_name);
    return PyUnicode_FromFormat("<%s %zd bytes>", Py_TYPE(op)->tp_name, r->len);
}

static PyMethodDef Record_methods[] = {
    {"tobytes", Record_tobytes, METH_NOARGS, PyDoc_STR("Copy the record into bytes.")},
    {NULL},
};

static PyObject *
Record_get_valid(PyObject *op, void *c)
{
    return PyBool_FromLong(((PyBPF_Record *)op)->ptr != NULL);
}

static int
Record_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((PyBPF_Record *)op)->owner);
    return 0;
}

static int
Record_clear(PyObject *op)
{
    Py_CLEAR(((PyBPF_Record *)op)->owner);
    return 0;
}

static void
Record_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    Record_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyGetSetDef Record_getsets[] = {
    {"valid", Record_get_valid, NULL, PyDoc_STR("False once the memory may be reused."), NULL},
    {NULL},
};

static PyType_Slot Record_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("Memory inside a ring buffer, valid for a limited time.")},
    {Py_tp_dealloc, Record_dealloc},
    {Py_tp_traverse, Record_traverse},
    {Py_tp_clear, Record_clear},
    {Py_tp_getset, Record_getsets},
    {Py_sq_length, Record_len},
    {Py_mp_length, Record_len},
    {Py_mp_subscript, Record_subscript},
    {Py_tp_methods, Record_methods},
    {Py_tp_repr, Record_repr},
    {Py_bf_getbuffer, Record_getbuffer},
    {Py_bf_releasebuffer, Record_releasebuffer},
    {0, NULL},
};

static PyType_Spec Record_spec = {
    .name = "bpf._bpf.RingRecord",
    .basicsize = sizeof(PyBPF_Record),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Record_slots,
};

static PyBPF_Record *
pybpf_record_new(PyObject *record_type, int readonly, PyObject *owner)
{
    PyBPF_Record *r = PyObject_GC_New(PyBPF_Record, (PyTypeObject *)record_type);

    if (!r)
        return NULL;
    r->ptr = NULL;
    r->len = 0;
    r->exports = 0;
    r->readonly = readonly;
    r->owner = Py_XNewRef(owner);
    PyObject_GC_Track(r);
    return r;
}

/* The record type lives in the module (as _RingRecord), not in the shared state struct. */
static PyObject *
pybpf_record_type(PyTypeObject *tp)
{
    PyObject *mod = PyType_GetModule(tp);

    if (!mod)
        return NULL;
    return PyObject_GetAttrString(mod, "_RingRecord");
}

/* ---- shared delivery helpers ----------------------------------------------------------------*/

enum {
    PYBPF_EV_BYTES = 0, /* callback(bytes) per record */
    PYBPF_EV_VIEW = 1,  /* callback(memoryview) per record, valid only during the call */
    PYBPF_EV_BATCH = 2, /* records collected as bytes, callback(list) once per consume */
    PYBPF_EV_PACKED = 3, /* fixed-size records copied back to back, callback(bytes) once per
                          * consume: decoding is then one numpy/struct call for the batch */
    PYBPF_EV_VIEWBATCH = 4, /* ring buffer only: callback(record) over a run of fixed-size
                             * records in the ring itself, headers included (stride
                             * round_up(size + 8, 8)), valid during the call: a numpy view of
                             * a whole batch with no copy at all (see pybpf_own_consume) */
};

#define PYBPF_CHUNK 4096 /* records per consume round: batches stay cache-sized */

/* A growable byte buffer for PACKED mode (PyMem). */
typedef struct {
    char *buf;
    Py_ssize_t len, cap, item;
} pybpf_packed;

/* Append one record of `size` bytes as an item of p->item bytes (cut or zero-padded). */
static int
pybpf_packed_add(pybpf_packed *p, const void *data, Py_ssize_t size)
{
    if (p->len + p->item > p->cap) {
        Py_ssize_t ncap = p->cap ? p->cap * 2 : p->item * 256;
        char *nb = PyMem_Realloc(p->buf, ncap);
        if (!nb)
            return -1;
        p->buf = nb;
        p->cap = ncap;
    }
    if (size >= p->item) {
        memcpy(p->buf + p->len, data, p->item);
    } else {
        memcpy(p->buf + p->len, data, size);
        memset(p->buf + p->len + size, 0, p->item - size);
    }
    p->len += p->item;
    return 0;
}

/* Hand the packed bytes to cb and reset; returns 0 or -1. */
static int
pybpf_packed_flush(pybpf_packed *p, PyObject *cb)
{
    PyObject *b, *res;

    if (p->len == 0)
        return 0;
    b = PyBytes_FromStringAndSize(p->buf, p->len);
    p->len = 0;
    if (!b)
        return -1;
    res = PyObject_CallOneArg(cb, b);
    Py_DECREF(b);
    if (!res)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* ---- the reader base ---------------------------------------------------------------------
 * RingBuffer, PerfBuffer and UserRingBuffer start with this struct (PyBPF_FdObject first, so
 * the fd base works on it): the wake eventfd, the zero-copy exporter and the per-consume state
 * that the shared wait, poll, delivery, close and dealloc code below works on.  The writer
 * (UserRingBuffer) uses only base, efd and record_type. */

typedef struct {
    PyBPF_FdObject base;      /* fd: our epoll fd (owned); base.release frees the libbpf side */
    int efd;                  /* eventfd close() writes to wake a blocked wait */
    PyObject *record_type;    /* strong: _RingRecord */
    PyBPF_Record *rec;        /* reusable zero-copy exporter (strong) or NULL */
    Py_ssize_t count;         /* records seen in the current consume */
    int stop;                 /* a callback raised or asked to stop */
    int pinned;               /* a zero-copy view escaped: never unmap */
    int busy;                 /* inside a consume (callbacks may drop the GIL) */
} PyBPF_Reader;

/* Where one source's records go: the callback and, for batch modes, what is collected for it.
 * A ring buffer has one per ring, a perf buffer one for all CPUs. */
typedef struct {
    PyObject *callback;  /* strong */
    PyObject *batch;     /* list (strong) in BATCH mode, else NULL */
    pybpf_packed packed; /* PACKED mode */
    int mode;
} pybpf_sink;

static int
pybpf_sink_init(pybpf_sink *s, PyObject *callback, int mode, Py_ssize_t item)
{
    s->mode = mode;
    s->packed.item = item;
    if (mode == PYBPF_EV_BATCH && !(s->batch = PyList_New(0)))
        return -1;
    s->callback = Py_NewRef(callback);
    return 0;
}

static void
pybpf_sink_clear(pybpf_sink *s)
{
    Py_CLEAR(s->callback);
    Py_CLEAR(s->batch);
    PyMem_Free(s->packed.buf);
    s->packed.buf = NULL;
}

/* Interpret a callback's return value: a negative int asks to stop.  Returns 1 to stop. */
static int
pybpf_cb_wants_stop(PyObject *res)
{
    int overflow;
    long long v;

    if (res == Py_None || !PyLong_Check(res))
        return 0;
    v = PyLong_AsLongLongAndOverflow(res, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow < 0 || v < 0;
}

/* Call cb with a zero-copy record over data, then invalidate it.  The record object itself is
 * passed (no memoryview is built per record): it exports the ring memory through the buffer
 * protocol, so struct.unpack_from, bytes(), memoryview() and numpy work on it.  Afterwards its
 * pointer is cleared, so any later access raises ValueError; if a buffer taken from it is
 * still held (a memoryview not released, a numpy array) we raise BufferError and pin the ring
 * memory.  The object is reused for the next record unless the callback kept a reference.
 * first, if not NULL, goes before the record (the perf buffer's cpu).  Returns the callback's
 * result or NULL. */
static PyObject *
pybpf_call_with_view(PyBPF_Reader *r, PyObject *cb, void *data, Py_ssize_t len,
                     PyObject *first)
{
    PyBPF_Record *rec = r->rec;
    PyObject *res;

    if (!rec || Py_REFCNT(rec) > 1 || rec->exports > 0) {
        Py_XDECREF(rec);
        r->rec = rec = pybpf_record_new(r->record_type, 1, NULL);
        if (!rec)
            return NULL;
    }
    rec->ptr = data;
    rec->len = len;
    if (first) {
        PyObject *args[2] = {first, (PyObject *)rec};
        res = PyObject_Vectorcall(cb, args, 2, NULL);
    } else {
        res = PyObject_CallOneArg(cb, (PyObject *)rec);
    }
    rec->ptr = NULL;
    if (rec->exports > 0) {
        r->pinned = 1;
        if (res) {
            Py_DECREF(res);
            PyErr_SetString(PyExc_BufferError,
                            "a buffer over a zero-copy record (memoryview, numpy array) "
                            "outlived its callback; release it (with memoryview(r) as v: ...) "
                            "or copy with bytes(r). The ring memory stays mapped for the rest "
                            "of the process.");
            return NULL;
        }
    }
    return res;
}

/* Deliver one record to a sink: call its callback now (BYTES, VIEW) or add the record to the
 * batch (BATCH, PACKED; pybpf_sink_flush hands it over).  The record is data/size in the
 * ring, or an existing bytes object (a record the perf buffer held back), which VIEW mode
 * then passes as it is.  first, if not NULL, is passed before the record (the perf buffer's
 * cpu).  Returns 0, 1 when the callback asked to stop (returned a negative number), or -1
 * with an exception set.  GIL held. */
static int
pybpf_sink_deliver(PyBPF_Reader *r, pybpf_sink *s, PyObject *first, void *data,
                   Py_ssize_t size, PyObject *bytes)
{
    PyObject *res, *b;
    int stop;

    r->count++;
    if (bytes) {
        data = PyBytes_AS_STRING(bytes);
        size = PyBytes_GET_SIZE(bytes);
    }
    if (s->mode == PYBPF_EV_PACKED) {
        if (pybpf_packed_add(&s->packed, data, size) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }
    if (s->mode == PYBPF_EV_VIEW && !bytes) {
        res = pybpf_call_with_view(r, s->callback, data, size, first);
    } else {
        b = bytes ? Py_NewRef(bytes) : PyBytes_FromStringAndSize(data, size);
        if (!b)
            return -1;
        if (s->mode == PYBPF_EV_BATCH) {
            int rc = PyList_Append(s->batch, b);
            Py_DECREF(b);
            return rc;
        }
        if (first) {
            PyObject *args[2] = {first, b};
            res = PyObject_Vectorcall(s->callback, args, 2, NULL);
        } else {
            res = PyObject_CallOneArg(s->callback, b);
        }
        Py_DECREF(b);
    }
    if (!res)
        return -1;
    stop = pybpf_cb_wants_stop(res);
    Py_DECREF(res);
    return stop;
}

/* A batch has reached PYBPF_CHUNK records. */
static int
pybpf_sink_full(pybpf_sink *s)
{
    if (s->mode == PYBPF_EV_PACKED)
        return s->packed.len >= PYBPF_CHUNK * s->packed.item;
    return s->mode == PYBPF_EV_BATCH && PyList_GET_SIZE(s->batch) >= PYBPF_CHUNK;
}

/* Hand the collected batch, if any, to the callback.  Returns 0 or -1 (the batch is gone
 * either way, as single records are once their callback ran). */
static int
pybpf_sink_flush(pybpf_sink *s)
{
    PyObject *batch, *res;

    if (s->mode == PYBPF_EV_PACKED)
        return pybpf_packed_flush(&s->packed, s->callback);
    if (s->mode != PYBPF_EV_BATCH || PyList_GET_SIZE(s->batch) == 0)
        return 0;
    batch = s->batch;
    s->batch = PyList_New(0);
    if (!s->batch) {
        s->batch = batch;
        return -1;
    }
    res = PyObject_CallOneArg(s->callback, batch);
    Py_DECREF(batch);
    if (!res)
        return -1;
    Py_DECREF(res);
    return 0;
}

static double
pybpf_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Wait until the reader's epoll fd is ready.  timeout_ms < 0 waits forever.  The GIL is
 * released during epoll_wait; on EINTR signal handlers run (Ctrl-C raises) and the wait goes
 * on for what is left of the deadline.  Returns 1 when ready, 0 on timeout or when close()
 * was called meanwhile, -1 with an exception set. */
static int
pybpf_events_wait(PyBPF_FdObject *o, int timeout_ms, double *deadline)
{
    struct epoll_event ev[4];
    int n, err, ms = timeout_ms, i;

    if (timeout_ms >= 0 && *deadline == 0)
        *deadline = pybpf_now() + timeout_ms / 1000.0;
    for (;;) {
        if (timeout_ms >= 0) {
            double left = *deadline - pybpf_now();
            ms = left <= 0 ? 0 : (int)(left * 1000.0 + 0.999);
        }
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(o->fd, ev, 4, ms);
        err = errno;
        Py_END_ALLOW_THREADS
        if (o->closing)
            return 0;
        if (n < 0) {
            if (err != EINTR) {
                pybpf_err(PYBPF_STATE(o), err, "epoll_wait", (PyObject *)o);
                return -1;
            }
            if (PyErr_CheckSignals() < 0)
                return -1;
            if (timeout_ms >= 0 && pybpf_now() >= *deadline)
                return 0;
            continue;
        }
        if (n == 0)
            return 0;
        for (i = 0; i < n; i++)
            if (ev[i].data.u64 == PYBPF_WAKE_TAG && o->closing)
                return 0;
        return 1;
    }
}

/* Build the reader's own epoll fd holding libbpf's epoll fd (inner, unless < 0) and a fresh
 * eventfd for close() to wake waiters. */
static int
pybpf_events_epoll(pybpf_state *st, int inner, int events, int *efd_out)
{
    struct epoll_event ev = {0};
    int ep, efd, err;

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        pybpf_err(st, errno, "epoll_create1", NULL);
        return -1;
    }
    if (ep == 0) { /* never keep fd 0, see fd.c */
        int nfd = fcntl(ep, F_DUPFD_CLOEXEC, 1);
        close(ep);
        ep = nfd;
        if (ep < 0) {
            pybpf_err(st, errno, "fcntl(F_DUPFD)", NULL);
            return -1;
        }
    }
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        err = errno;
        close(ep);
        pybpf_err(st, err, "eventfd", NULL);
        return -1;
    }
    ev.events = events;
    ev.data.u64 = 0;
    if (inner >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, inner, &ev) < 0)
        goto fail;
    ev.events = EPOLLIN;
    ev.data.u64 = PYBPF_WAKE_TAG;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
        goto fail;
    *efd_out = efd;
    return ep;
fail:
    err = errno;
    close(ep);
    close(efd);
    pybpf_err(st, err, "epoll_ctl", NULL);
    return -1;
}

/* close() of every reader: mark closing, wake a wait blocked in another thread, release now
 * if nothing is in flight (else the last call to leave does). */
static PyObject *
pybpf_reader_close(PyObject *op, PyObject *unused)
{
    PyBPF_Reader *r = (PyBPF_Reader *)op;

    if (r->base.fd >= 0 && r->base.inflight > 0 && r->efd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(r->efd, &one, sizeof(one)); /* nonblocking; EAGAIN: already set */
        (void)w;
    }
    return pybpf_fd_close(op, NULL);
}

static int
pybpf_timeout_arg(PyObject *const *args, Py_ssize_t nargs, int *ms)
{
    *ms = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "expected at most 1 argument, got %zd", nargs);
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        long v = PyLong_AsLong(args[0]);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v > INT_MAX)
            v = INT_MAX;
        *ms = v < 0 ? -1 : (int)v;
    }
    return 0;
}

/* Allocate a reader of type tp, not open yet.  release frees the libbpf side; it is set now
 * (and must cope with a half-built object) so that every later failure is a plain
 * Py_DECREF. */
static PyBPF_Reader *
pybpf_reader_alloc(PyTypeObject *tp, const char *kind, pybpf_release_fn release)
{
    PyBPF_Reader *r = (PyBPF_Reader *)tp->tp_alloc(tp, 0);

    if (!r)
        return NULL;
    pybpf_fd_init(&r->base, -1, 0, kind);
    r->base.release = release;
    r->efd = -1;
    r->record_type = pybpf_record_type(pybpf_state_from_type(tp)->RingBuffer_Type);
    if (!r->record_type) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* Give the reader its own epoll fd (what fileno() returns) holding inner (libbpf's epoll fd or
 * the map fd; none when < 0) and the wake eventfd.  Returns 0 or -1 with an exception set. */
static int
pybpf_reader_open(PyBPF_Reader *r, int inner, int events)
{
    pybpf_release_fn release = r->base.release;
    int ep, efd;

    ep = pybpf_events_epoll(PYBPF_STATE(r), inner, events, &efd);
    if (ep < 0)
        return -1;
    pybpf_fd_init(&r->base, ep, 1, r->base.kind);
    r->base.release = release;
    r->efd = efd;
    return 0;
}

/* For the release hooks: close the wake eventfd. */
static void
pybpf_reader_release_efd(PyBPF_Reader *r)
{
    if (r->efd >= 0)
        close(r->efd);
    r->efd = -1;
}

static int
pybpf_reader_traverse(PyObject *op, visitproc visit, void *arg)
{
    PyBPF_Reader *r = (PyBPF_Reader *)op;

    Py_VISIT(r->record_type);
    Py_VISIT(r->rec);
    return pybpf_fd_traverse(op, visit, arg);
}

/* tp_dealloc of every reader: the finalizer (ResourceWarning for an unclosed one), the
 * release hook, then free_own for the type's own fields (may be NULL). */
static void
pybpf_reader_dealloc(PyObject *op, void (*free_own)(PyObject *))
{
    PyBPF_Reader *r = (PyBPF_Reader *)op;
    PyTypeObject *tp = Py_TYPE(op);

    if (PyObject_CallFinalizerFromDealloc(op) < 0)
        return;
    PyObject_GC_UnTrack(op);
    if (r->base.fd >= 0 || r->base.release)
        pybpf_fd_release(&r->base);
    if (free_own)
        free_own(op);
    Py_CLEAR(r->rec);
    Py_CLEAR(r->record_type);
    if (r->base.weakreflist)
        PyObject_ClearWeakRefs(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* "<type closed>", or "<type label=value fd=N>" (no label: "<type fd=N>"). */
static PyObject *
pybpf_reader_repr(PyObject *op, const char *label, Py_ssize_t value)
{
    PyBPF_Reader *r = (PyBPF_Reader *)op;

    if (r->base.fd < 0)
        return PyUnicode_FromFormat("<%s closed>", Py_TYPE(op)->tp_name);
    if (!label)
        return PyUnicode_FromFormat("<%s fd=%d>", Py_TYPE(op)->tp_name, r->base.fd);
    return PyUnicode_FromFormat("<%s %s=%zd fd=%d>", Py_TYPE(op)->tp_name, label, value,
                                r->base.fd);
}

/* libbpf's consumers are single-threaded, and a Python callback can let another thread run
 * (or call poll() itself): only one consume may run at a time. */
static int
pybpf_not_busy(int busy, const char *kind)
{
    if (busy) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s is already being consumed (by another thread, or a callback "
                     "called poll/consume/add on its own reader)", kind);
        return -1;
    }
    return 0;
}

/* A reader's consume: hand over at most max records (max <= 0: all there are) without
 * waiting; returns how many, or -1 with an exception set.  GIL held. */
typedef Py_ssize_t (*pybpf_consume_fn)(PyBPF_Reader *r, long max);

static Py_ssize_t
pybpf_reader_consume(PyBPF_Reader *r, pybpf_consume_fn consume, long max)
{
    Py_ssize_t n;

    if (pybpf_not_busy(r->busy, r->base.kind) < 0)
        return -1;
    r->busy = 1;
    r->stop = 0;
    r->count = 0;
    n = consume(r, max);
    r->busy = 0;
    return n;
}

/* poll() and consume() of the readers (consume is ms == 0).  Consume first: when records are
 * waiting this costs no syscall at all.  Then, while nothing was handed over, wait (GIL
 * released, EINTR and signals handled, the deadline kept: pybpf_events_wait) and consume
 * again: a wakeup may bring nothing to count (discarded records, lost-sample notices), and
 * the wait then goes on within the same deadline.  Returns the count as an int, or NULL. */
static PyObject *
pybpf_reader_poll(PyBPF_Reader *r, pybpf_consume_fn consume, int ms, long max)
{
    Py_ssize_t n;
    double deadline = 0;
    int w;

    if (pybpf_enter(&r->base) < 0)
        return NULL;
    n = pybpf_reader_consume(r, consume, max);
    while (n == 0 && ms != 0 && !r->stop) {
        w = pybpf_events_wait(&r->base, ms, &deadline);
        if (w <= 0) {
            n = w;
            break;
        }
        n = pybpf_reader_consume(r, consume, max);
    }
    pybpf_leave(&r->base);
    if (n < 0)
        return NULL;
    return PyLong_FromSsize_t(n);
}

/* The readers' weakref slot (the fd base is at offset 0 in each) and plain fd getters. */
static PyMemberDef pybpf_reader_members[] = {
    PYBPF_FD_MEMBERS,
    {NULL},
};

static PyGetSetDef pybpf_reader_getsets[] = {
    PYBPF_FD_GETSETS,
    {NULL},
};

/* Create a reader type from spec, store it in *slot and add it to the module as name. */
static int
pybpf_reader_add_type(PyObject *m, PyType_Spec *spec, const char *name, PyTypeObject **slot)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (!*slot || PyModule_AddObjectRef(m, name, (PyObject *)*slot) < 0)
        return -1;
    return 0;
}

/* ---- RingBuffer ------------------------------------------------------------------------------*/

typedef struct PyBPF_RingBuffer PyBPF_RingBuffer;

typedef struct {
    PyBPF_RingBuffer *owner; /* borrowed: the ctx lives and dies with the owner */
    pybpf_sink sink;         /* this ring's callback and batch */
    int lib_index;           /* index in libbpf's ring_buffer, -1 for VIEWBATCH rings */
    /* VIEWBATCH rings are mapped by us (libbpf gives no access to the data pointer nor a way
     * to advance the consumer position after a batch): the same layout libbpf maps. */
    unsigned long *consumer_pos; /* RW page */
    unsigned long *producer_pos; /* first RO page */
    char *data;                  /* RO data, mapped twice back to back */
    size_t mask, page;
    Py_ssize_t stride;           /* round_up(item + 8, 8) */
} pybpf_ring_ctx;

struct PyBPF_RingBuffer {
    PyBPF_Reader r;           /* r.base.release frees everything below */
    struct ring_buffer *rb;   /* NULL until the first map is added */
    pybpf_ring_ctx **ctxs;    /* one per ring, pointers stable (libbpf keeps them) */
    Py_ssize_t nctx;
    int nlib;                 /* rings added to libbpf's ring_buffer */
};

static void
RingBuffer_release(PyBPF_FdObject *o)
{
    PyBPF_RingBuffer *self = (PyBPF_RingBuffer *)o;
    Py_ssize_t i;

    /* A pinned ring's memory must stay mapped: leak the libbpf structure. */
    if (self->rb && !self->r.pinned)
        ring_buffer__free(self->rb);
    self->rb = NULL;
    pybpf_reader_release_efd(&self->r);
    for (i = 0; i < self->nctx; i++) {
        pybpf_ring_ctx *c = self->ctxs[i];
        if (self->r.pinned)
            continue; /* libbpf may still hold these pointers; leak with the rings */
        pybpf_sink_clear(&c->sink);
        if (c->consumer_pos)
            munmap(c->consumer_pos, c->page);
        if (c->producer_pos)
            munmap(c->producer_pos, c->page + 2 * (c->mask + 1));
        PyMem_Free(c);
    }
    if (!self->r.pinned)
        PyMem_Free(self->ctxs);
    self->ctxs = NULL;
    self->nctx = 0;
}

static int
pybpf_ring_sample(void *ctx, void *data, size_t size)
{
    pybpf_ring_ctx *c = ctx;
    PyBPF_RingBuffer *self = c->owner;
    int r;

    /* Runs inside ring_buffer__consume, with the GIL held (see the top of the file). */
    if (self->r.base.closing)
        return -ECANCELED;
    r = pybpf_sink_deliver(&self->r, &c->sink, NULL, data, (Py_ssize_t)size, NULL);
    if (r < 0)
        return -EINTR; /* exception set: libbpf stops, poll() raises it */
    if (r > 0) {
        self->r.stop = 1;
        return -ECANCELED;
    }
    return 0;
}

/* Hand each ring's collected batch to its callback; after one raised, the others keep theirs
 * for the next poll. */
static int
pybpf_ring_flush(PyBPF_RingBuffer *self)
{
    Py_ssize_t i;
    int failed = 0;

    for (i = 0; i < self->nctx && !failed; i++)
        if (pybpf_sink_flush(&self->ctxs[i]->sink) < 0)
            failed = 1;
    return failed ? -1 : 0;
}

/* ---- VIEWBATCH rings: our own consumer over the kernel's ring layout -------------------------
 * Layout (uapi): page 0 holds consumer_pos (we write it), page 1 producer_pos, then the data,
 * mapped twice in a row so that anything up to the ring's size starting anywhere in the first
 * copy is contiguous.  Each record: a u32 length (BUSY bit while reserved, DISCARD bit), a u32
 * page offset, then the data; records start at multiples of 8.  Ordering as in libbpf: the
 * positions and length words are read with load-acquire (the kernel publishes with
 * store-release) and our consumer_pos is written with store-release after the callback. */

#define PYBPF_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define PYBPF_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static int
pybpf_own_map(pybpf_state *st, pybpf_ring_ctx *c, int map_fd, Py_ssize_t item)
{
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    long page = sysconf(_SC_PAGESIZE);
    void *p;

    memset(&info, 0, sizeof(info));
    if (bpf_map_get_info_by_fd(map_fd, &info, &len) < 0) {
        pybpf_err(st, errno, "ring buffer add", NULL);
        return -1;
    }
    if (info.type != BPF_MAP_TYPE_RINGBUF) {
        pybpf_err_with(st, NULL, EINVAL, "ring buffer add", NULL,
                       "the map must be a BPF_MAP_TYPE_RINGBUF map");
        return -1;
    }
    c->page = (size_t)page;
    c->mask = info.max_entries - 1;
    c->stride = (item + BPF_RINGBUF_HDR_SZ + 7) / 8 * 8;
    if (c->stride > (Py_ssize_t)info.max_entries) {
        PyErr_Format(PyExc_ValueError, "records of %zd bytes do not fit a %u-byte ring", item,
                     info.max_entries);
        return -1;
    }
    p = mmap(NULL, c->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (p == MAP_FAILED) {
        pybpf_err(st, errno, "ring buffer mmap", NULL);
        return -1;
    }
    c->consumer_pos = p;
    p = mmap(NULL, c->page + 2 * (size_t)info.max_entries, PROT_READ, MAP_SHARED, map_fd,
             (off_t)c->page);
    if (p == MAP_FAILED) {
        int err = errno;
        munmap(c->consumer_pos, c->page);
        c->consumer_pos = NULL;
        pybpf_err(st, err, "ring buffer mmap", NULL);
        return -1;
    }
    c->producer_pos = p;
    c->data = (char *)p + c->page;
    return 0;
}

/* Hand [start, start + n * stride) to the callback as one zero-copy record, or a lone
 * record of another size as a copy laid out the same way; then release the consumed space. */
static int
pybpf_own_deliver(PyBPF_RingBuffer *self, pybpf_ring_ctx *c, char *start, Py_ssize_t n,
                  unsigned long cons, const char *odd, Py_ssize_t odd_len)
{
    PyObject *res;

    if (odd) {
        /* A record whose size differs from the batch's: copy it, cut or zero-padded to the
         * item size, behind a header, so the callback sees the same layout. */
        Py_ssize_t item = c->stride - BPF_RINGBUF_HDR_SZ;
        PyObject *b = PyBytes_FromStringAndSize(NULL, c->stride);
        if (!b)
            return -1;
        memset(PyBytes_AS_STRING(b), 0, c->stride);
        memcpy(PyBytes_AS_STRING(b) + BPF_RINGBUF_HDR_SZ, odd, odd_len < item ? odd_len : item);
        res = PyObject_CallOneArg(c->sink.callback, b);
        Py_DECREF(b);
    } else {
        res = pybpf_call_with_view(&self->r, c->sink.callback, start, n * c->stride, NULL);
    }
    /* The batch counts as handled even if the callback raised (as for single records). */
    PYBPF_STORE_REL(c->consumer_pos, cons);
    self->r.count += odd ? 1 : n;
    if (!res)
        return -1;
    if (pybpf_cb_wants_stop(res))
        self->r.stop = 1;
    Py_DECREF(res);
    return 0;
}

static int
pybpf_own_consume(PyBPF_RingBuffer *self, pybpf_ring_ctx *c, Py_ssize_t max)
{
    unsigned long cons = PYBPF_LOAD_ACQ(c->consumer_pos), prod, run_start;
    Py_ssize_t n, item = c->stride - BPF_RINGBUF_HDR_SZ, done = 0;
    __u32 len, dlen;
    char *hdr;

    while (!self->r.stop && !self->r.base.closing && (max <= 0 || done < max)) {
        prod = PYBPF_LOAD_ACQ(c->producer_pos);
        if (cons >= prod)
            return 0;
        run_start = cons;
        n = 0;
        while (cons < prod && n < PYBPF_CHUNK && (max <= 0 || done + n < max)) {
            hdr = c->data + (cons & c->mask);
            len = PYBPF_LOAD_ACQ((__u32 *)hdr);
            if (len & BPF_RINGBUF_BUSY_BIT)
                break; /* not committed yet: later records wait behind it */
            dlen = len & ~(__u32)(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
            if ((len & BPF_RINGBUF_DISCARD_BIT) || (Py_ssize_t)dlen != item) {
                unsigned long next = cons + ((dlen + BPF_RINGBUF_HDR_SZ + 7) / 8 * 8);
                if (n > 0)
                    break; /* deliver the run first */
                if (len & BPF_RINGBUF_DISCARD_BIT) {
                    cons = next;
                    PYBPF_STORE_REL(c->consumer_pos, cons);
                    run_start = cons;
                    continue;
                }
                if (pybpf_own_deliver(self, c, NULL, 0, next, hdr + BPF_RINGBUF_HDR_SZ,
                                      dlen) < 0)
                    return -1;
                cons = next;
                done++;
                if (self->r.stop)
                    return 0;
                run_start = cons;
                continue;
            }
            cons += c->stride;
            n++;
        }
        if (n == 0)
            return 0; /* busy record at the head */
        if (pybpf_own_deliver(self, c, c->data + (run_start & c->mask), n, cons, NULL, 0) < 0)
            return -1;
        done += n;
    }
    return 0;
}

/* Consume what is there, in rounds of PYBPF_CHUNK records with batches delivered after each
 * round (so a batch stays cache-sized and a flood cannot grow it without bound); max <= 0
 * means until the rings are empty.  Returns records handled or -1.  GIL held; runs through
 * pybpf_reader_consume (one at a time, per-consume state reset). */
static Py_ssize_t
pybpf_ring_consume(PyBPF_Reader *reader, long max)
{
    PyBPF_RingBuffer *self = (PyBPF_RingBuffer *)reader;
    Py_ssize_t total = 0, i;
    size_t want;
    int r;

    for (i = 0; i < self->nctx && !self->r.stop; i++) {
        pybpf_ring_ctx *c = self->ctxs[i];
        if (c->lib_index >= 0)
            continue;
        if (pybpf_own_consume(self, c, max > 0 ? max - total : 0) < 0)
            return -1;
    }
    total += self->r.count;
    if (!self->rb || self->r.stop || (max > 0 && total >= max))
        return total;
    do {
        want = PYBPF_CHUNK;
        if (max > 0 && (size_t)(max - total) < want)
            want = (size_t)(max - total);
        self->r.count = 0;
        r = ring_buffer__consume_n(self->rb, want);
        total += self->r.count;
        if (PyErr_Occurred())
            return -1; /* records already collected in batches stay for the next call */
        if (r < 0 && !self->r.stop && !self->r.base.closing) {
            pybpf_err(PYBPF_STATE(self), -r, "ring buffer consume", (PyObject *)self);
            return -1;
        }
        if (pybpf_ring_flush(self) < 0)
            return -1;
    } while (r == (int)want && !self->r.stop && !self->r.base.closing &&
             (max <= 0 || total < max));
    return total;
}

static PyObject *
RingBuffer_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    PyBPF_RingBuffer *self;

    if ((kw && PyDict_GET_SIZE(kw)) || PyTuple_GET_SIZE(args) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments; add maps with add()",
                     tp->tp_name);
        return NULL;
    }
    self = (PyBPF_RingBuffer *)pybpf_reader_alloc(tp, "ring buffer", RingBuffer_release);
    if (!self)
        return NULL;
    /* libbpf creates its epoll fd with the first ring (ring_buffer__new needs a map), so
     * ours holds only the wake eventfd until add() nests libbpf's in. */
    if (pybpf_reader_open(&self->r, -1, 0) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
RingBuffer_add(PyObject *op, PyObject *args)
{
    PyBPF_RingBuffer *self = (PyBPF_RingBuffer *)op;
    pybpf_state *st = PYBPF_STATE(op);
    int map_fd, mode = PYBPF_EV_BYTES, err = 0;
    Py_ssize_t item = 0;
    PyObject *cb;
    pybpf_ring_ctx *c, **nctxs;

    if (!PyArg_ParseTuple(args, "iO|in:add", &map_fd, &cb, &mode, &item))
        return NULL;
    if ((mode == PYBPF_EV_PACKED || mode == PYBPF_EV_VIEWBATCH) && item <= 0)
        return PyErr_Format(PyExc_ValueError, "batch delivery needs a record size > 0");
    if (!PyCallable_Check(cb))
        return PyErr_Format(PyExc_TypeError, "callback must be callable, not %.100s",
                            Py_TYPE(cb)->tp_name);
    if (mode < PYBPF_EV_BYTES || mode > PYBPF_EV_VIEWBATCH)
        return PyErr_Format(PyExc_ValueError, "unknown delivery mode %d", mode);
    if (pybpf_not_busy(self->r.busy, "ring buffer") < 0)
        return NULL;
    if (pybpf_enter(&self->r.base) < 0)
        return NULL;
    c = PyMem_Calloc(1, sizeof(*c));
    nctxs = c ? PyMem_Realloc(self->ctxs, sizeof(*nctxs) * (self->nctx + 1)) : NULL;
    if (!nctxs) {
        PyMem_Free(c);
        pybpf_leave(&self->r.base);
        return PyErr_NoMemory();
    }
    self->ctxs = nctxs;
    c->owner = self;
    c->lib_index = -1;
    if (pybpf_sink_init(&c->sink, cb, mode, item) < 0)
        goto fail;
    if (mode == PYBPF_EV_VIEWBATCH) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
        if (pybpf_own_map(st, c, map_fd, item) < 0)
            goto fail;
        if (epoll_ctl(self->r.base.fd, EPOLL_CTL_ADD, map_fd, &ev) < 0) {
            err = errno;
            munmap(c->consumer_pos, c->page);
            munmap(c->producer_pos, c->page + 2 * (c->mask + 1));
            goto fail;
        }
        goto added;
    }
    /* Map info lookup and mmap are syscalls, but quick and non-blocking; the GIL is kept
     * because the ring_buffer struct must not change under a concurrent consume. */
    if (!self->rb) {
        self->rb = ring_buffer__new(map_fd, pybpf_ring_sample, c, NULL);
        if (!self->rb) {
            err = errno;
        } else {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
            if (epoll_ctl(self->r.base.fd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(self->rb),
                          &ev) < 0) {
                err = errno;
                ring_buffer__free(self->rb);
                self->rb = NULL;
            }
        }
    } else {
        int r = ring_buffer__add(self->rb, map_fd, pybpf_ring_sample, c);
        if (r < 0)
            err = -r;
    }
    if (err)
        goto fail;
    c->lib_index = self->nlib++;
added:
    self->ctxs[self->nctx++] = c;
    pybpf_leave(&self->r.base);
    Py_RETURN_NONE;
fail:
    pybpf_sink_clear(&c->sink);
    PyMem_Free(c);
    pybpf_leave(&self->r.base);
    if (!err)
        return NULL;
    return pybpf_err_with(st, NULL, err, "ring buffer add", NULL,
                          err == EEXIST ? "this map fd is already in this RingBuffer"
                          : err == EINVAL && mode != PYBPF_EV_VIEWBATCH
                              ? "the map must be a BPF_MAP_TYPE_RINGBUF map"
                              : NULL);
}

static PyObject *
RingBuffer_poll(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    long max = 0;
    int ms;

    if (nargs == 2) { /* poll(timeout_ms, max): handle at most max records (0: all) */
        max = PyLong_AsLong(args[1]);
        if (max == -1 && PyErr_Occurred())
            return NULL;
        nargs = 1;
    }
    if (pybpf_timeout_arg(args, nargs, &ms) < 0)
        return NULL;
    return pybpf_reader_poll((PyBPF_Reader *)op, pybpf_ring_consume, ms, max);
}

static PyObject *
RingBuffer_consume(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    long max = 0;

    if (nargs > 1)
        return PyErr_Format(PyExc_TypeError, "consume() takes at most 1 argument");
    if (nargs == 1 && args[0] != Py_None) {
        max = PyLong_AsLong(args[0]);
        if (max == -1 && PyErr_Occurred())
            return NULL;
    }
    return pybpf_reader_poll((PyBPF_Reader *)op, pybpf_ring_consume, 0, max);
}

static PyObject *
RingBuffer_ring_info(PyObject *op, PyObject *arg)
{
    PyBPF_RingBuffer *self = (PyBPF_RingBuffer *)op;
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    struct ring *r;
    PyObject *res;

    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (pybpf_enter(&self->r.base) < 0)
        return NULL;
    if (i < 0 || i >= self->nctx) {
        pybpf_leave(&self->r.base);
        return PyErr_Format(PyExc_IndexError, "ring index %zd out of range", i);
    }
    if (self->ctxs[i]->lib_index < 0) {
        pybpf_ring_ctx *c = self->ctxs[i];
        unsigned long cp = PYBPF_LOAD_ACQ(c->consumer_pos), pp = PYBPF_LOAD_ACQ(c->producer_pos);
        res = Py_BuildValue("{s:k,s:k,s:n,s:n}", "consumer_pos", cp, "producer_pos", pp,
                            "avail", (Py_ssize_t)(pp - cp), "size", (Py_ssize_t)(c->mask + 1));
        pybpf_leave(&self->r.base);
        return res;
    }
    r = ring_buffer__ring(self->rb, (unsigned int)self->ctxs[i]->lib_index);
    res = Py_BuildValue("{s:k,s:k,s:n,s:n}", "consumer_pos", ring__consumer_pos(r),
                        "producer_pos", ring__producer_pos(r), "avail",
                        (Py_ssize_t)ring__avail_data_size(r), "size",
                        (Py_ssize_t)ring__size(r));
    pybpf_leave(&self->r.base);
    return res;
}

static PyObject *
RingBuffer_get_rings(PyObject *op, void *c)
{
    /* Once closed the rings are freed: a count of them would describe nothing. */
    if (pybpf_check_open(&((PyBPF_RingBuffer *)op)->r.base) < 0)
        return NULL;
    return PyLong_FromSsize_t(((PyBPF_RingBuffer *)op)->nctx);
}

static PyObject *
RingBuffer_repr(PyObject *op)
{
    return pybpf_reader_repr(op, "rings", ((PyBPF_RingBuffer *)op)->nctx);
}

static int
RingBuffer_traverse(PyObject *op, visitproc visit, void *arg)
{
    PyBPF_RingBuffer *self = (PyBPF_RingBuffer *)op;
    Py_ssize_t i;

    for (i = 0; i < self->nctx; i++) {
        Py_VISIT(self->ctxs[i]->sink.callback);
        Py_VISIT(self->ctxs[i]->sink.batch);
    }
    return pybpf_reader_traverse(op, visit, arg);
}

static int
RingBuffer_clear(PyObject *op)
{
    PyBPF_RingBuffer *self = (PyBPF_RingBuffer *)op;
    Py_ssize_t i;

    Py_CLEAR(self->r.rec);
    /* Callbacks often reference the reader (bound methods): break the cycle but keep the
     * contexts valid; a None callback makes a later consume raise TypeError, not crash. */
    for (i = 0; i < self->nctx; i++)
        Py_XSETREF(self->ctxs[i]->sink.callback, Py_NewRef(Py_None));
    return 0;
}

static void
RingBuffer_dealloc(PyObject *op)
{
    pybpf_reader_dealloc(op, NULL); /* the rings and their callbacks go with the release hook */
}

static PyMethodDef RingBuffer_methods[] = {
    {"add", RingBuffer_add, METH_VARARGS,
     PyDoc_STR("add(map_fd, callback, mode=0, item_size=0): add a BPF_MAP_TYPE_RINGBUF map to "
               "the epoll set. mode 0 calls callback(bytes) per record, 1 callback(record) "
               "with a zero-copy buffer valid only during the call, 2 callback(list of bytes) "
               "per batch, 3 callback(bytes) per batch holding records cut/padded to "
               "item_size bytes back to back.")},
    {"poll", (PyCFunction)(void (*)(void))RingBuffer_poll, METH_FASTCALL,
     PyDoc_STR("poll(timeout_ms=-1, max=0): consume what is there (at most max records, 0: "
               "all), else wait (GIL released) until records arrive, the timeout passes or "
               "close() is called. Returns records handled.")},
    {"consume", (PyCFunction)(void (*)(void))RingBuffer_consume, METH_FASTCALL,
     PyDoc_STR("consume(max=0): handle available records without waiting (max 0: all).")},
    {"close", pybpf_reader_close, METH_NOARGS,
     PyDoc_STR("Free the rings (idempotent) and wake a poll() blocked in another thread.")},
    {"ring_info", RingBuffer_ring_info, METH_O,
     PyDoc_STR("ring_info(i): consumer/producer positions, available bytes and size of ring i.")},
    {"fileno", pybpf_fd_fileno, METH_NOARGS,
     PyDoc_STR("Return the epoll fd, readable when a ring has data (for selectors/asyncio).")},
    {"__enter__", pybpf_fd_enter_ctx, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))pybpf_fd_exit_ctx, METH_FASTCALL, NULL},
    {NULL},
};

static PyGetSetDef RingBuffer_getsets[] = {
    PYBPF_FD_GETSETS,
    {"rings", RingBuffer_get_rings, NULL, PyDoc_STR("Number of maps added."), NULL},
    {NULL},
};

static PyType_Slot RingBuffer_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("Reader of BPF ring buffer maps (libbpf ring_buffer).")},
    {Py_tp_new, RingBuffer_new},
    {Py_tp_dealloc, RingBuffer_dealloc},
    {Py_tp_finalize, pybpf_fd_finalize},
    {Py_tp_traverse, RingBuffer_traverse},
    {Py_tp_clear, RingBuffer_clear},
    {Py_tp_repr, RingBuffer_repr},
    {Py_tp_methods, RingBuffer_methods},
    {Py_tp_getset, RingBuffer_getsets},
    {Py_tp_members, pybpf_reader_members},
    {0, NULL},
};

static PyType_Spec RingBuffer_spec = {
    .name = "bpf._bpf.RingBuffer",
    .basicsize = sizeof(PyBPF_RingBuffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = RingBuffer_slots,
};

/* ---- UserRingBuffer ---------------------------------------------------------------------------
 * Writer side of BPF_MAP_TYPE_USER_RINGBUF.  libbpf's user_ring_buffer is single-producer:
 * every reserve/submit/discard runs with the GIL held, which serialises them.  Waiting for
 * space is ours (not user_ring_buffer__reserve_blocking, which would touch the struct without
 * the GIL): an edge-triggered EPOLLOUT on the map fd fires when the kernel drains. */

typedef struct {
    PyBPF_Reader r;                 /* base, efd and record_type only (samples are records) */
    struct user_ring_buffer *urb;
    PyObject *outstanding;          /* list of reserved, unsubmitted samples (strong) */
} PyBPF_UserRingBuffer;

static void
UserRingBuffer_release(PyBPF_FdObject *o)
{
    PyBPF_UserRingBuffer *self = (PyBPF_UserRingBuffer *)o;
    int pinned = 0;
    Py_ssize_t i;

    if (self->outstanding) {
        for (i = 0; i < PyList_GET_SIZE(self->outstanding); i++) {
            PyBPF_Record *s = (PyBPF_Record *)PyList_GET_ITEM(self->outstanding, i);
            if (s->exports > 0)
                pinned = 1;
            s->ptr = NULL;
        }
        Py_CLEAR(self->outstanding);
    }
    if (self->urb && !pinned)
        user_ring_buffer__free(self->urb);
    self->urb = NULL;
    pybpf_reader_release_efd(&self->r);
}

static PyObject *
UserRingBuffer_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"map_fd", NULL};
    pybpf_state *st = pybpf_state_from_type(tp);
    PyBPF_UserRingBuffer *self;
    int map_fd;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "i:UserRingBuffer", kwlist, &map_fd))
        return NULL;
    self = (PyBPF_UserRingBuffer *)pybpf_reader_alloc(tp, "user ring buffer",
                                                      UserRingBuffer_release);
    if (!self)
        return NULL;
    self->outstanding = PyList_New(0);
    if (!self->outstanding) {
        Py_DECREF(self);
        return NULL;
    }
    self->urb = user_ring_buffer__new(map_fd, NULL);
    if (!self->urb) {
        int err = errno;
        Py_DECREF(self);
        return pybpf_err_with(st, NULL, err, "user ring buffer open", NULL,
                              err == EINVAL ? "the map must be a BPF_MAP_TYPE_USER_RINGBUF map"
                                            : NULL);
    }
    /* Edge-triggered EPOLLOUT on the map fd: fires when the BPF side has drained. */
    if (pybpf_reader_open(&self->r, map_fd, EPOLLOUT | EPOLLET) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* Reserve size bytes, waiting up to ms (-1: forever, 0: not at all) for space. */
static PyObject *
pybpf_urb_reserve(PyBPF_UserRingBuffer *self, Py_ssize_t size, int ms)
{
    PyObject *op = (PyObject *)self;
    int w;
    double deadline = 0;
    void *p = NULL;
    PyBPF_Record *s;

    if (size <= 0 || size > UINT32_MAX)
        return PyErr_Format(PyExc_ValueError, "sample size must be > 0, got %zd", size);
    if (pybpf_enter(&self->r.base) < 0)
        return NULL;
    for (;;) {
        p = user_ring_buffer__reserve(self->urb, (__u32)size);
        if (p)
            break;
        if (errno != ENOSPC || ms == 0) {
            int err = errno;
            pybpf_leave(&self->r.base);
            return pybpf_err_with(PYBPF_STATE(op), NULL, err, "user ring buffer reserve", op,
                                  err == E2BIG ? "the sample is larger than the ring" : NULL);
        }
        w = pybpf_events_wait(&self->r.base, ms, &deadline);
        if (w < 0 || (w == 0 && (self->r.base.closing || ms >= 0))) {
            pybpf_leave(&self->r.base);
            if (w < 0)
                return NULL;
            if (self->r.base.closing || self->r.base.fd < 0)
                return PyErr_Format(PyExc_ValueError, "user ring buffer closed while waiting");
            return pybpf_err_with(PYBPF_STATE(op), NULL, ENOSPC, "user ring buffer reserve",
                                  op, "timed out waiting for the BPF side to drain");
        }
    }
    s = pybpf_record_new(self->r.record_type, 0, op);
    if (!s || PyList_Append(self->outstanding, (PyObject *)s) < 0) {
        user_ring_buffer__discard(self->urb, p);
        Py_XDECREF(s);
        pybpf_leave(&self->r.base);
        return NULL;
    }
    s->ptr = p;
    s->len = size;
    pybpf_leave(&self->r.base);
    return (PyObject *)s;
}

static PyObject *
UserRingBuffer_reserve(PyObject *op, PyObject *args)
{
    Py_ssize_t size;
    int ms = 0;

    if (!PyArg_ParseTuple(args, "n|i:reserve", &size, &ms))
        return NULL;
    return pybpf_urb_reserve((PyBPF_UserRingBuffer *)op, size, ms);
}

/* submit=1: submit, 0: discard. */
static PyObject *
pybpf_urb_commit(PyObject *op, PyObject *arg, int submit)
{
    PyBPF_UserRingBuffer *self = (PyBPF_UserRingBuffer *)op;
    PyBPF_Record *s = (PyBPF_Record *)arg;
    Py_ssize_t i, n;

    /* Closed first: once closed every call raises ValueError, whatever the argument. */
    if (pybpf_enter(&self->r.base) < 0)
        return NULL;
    if (Py_TYPE(arg) != (PyTypeObject *)self->r.record_type || s->owner != op) {
        pybpf_leave(&self->r.base);
        return PyErr_Format(PyExc_TypeError, "expected a sample reserved from this buffer");
    }
    if (!s->ptr) {
        pybpf_leave(&self->r.base);
        return PyErr_Format(PyExc_ValueError, "sample already submitted or discarded");
    }
    if (s->exports > 0) {
        pybpf_leave(&self->r.base);
        return PyErr_Format(PyExc_BufferError,
                            "release memoryviews of the sample before %s",
                            submit ? "submit" : "discard");
    }
    if (submit)
        user_ring_buffer__submit(self->urb, s->ptr);
    else
        user_ring_buffer__discard(self->urb, s->ptr);
    s->ptr = NULL;
    n = PyList_GET_SIZE(self->outstanding);
    for (i = 0; i < n; i++)
        if (PyList_GET_ITEM(self->outstanding, i) == arg) {
            PySequence_DelItem(self->outstanding, i);
            break;
        }
    pybpf_leave(&self->r.base);
    Py_RETURN_NONE;
}

static PyObject *
UserRingBuffer_submit(PyObject *op, PyObject *arg)
{
    return pybpf_urb_commit(op, arg, 1);
}

static PyObject *
UserRingBuffer_discard(PyObject *op, PyObject *arg)
{
    return pybpf_urb_commit(op, arg, 0);
}

static PyObject *
UserRingBuffer_write(PyObject *op, PyObject *args)
{
    PyBPF_UserRingBuffer *self = (PyBPF_UserRingBuffer *)op;
    PyObject *data, *sample, *r;
    Py_buffer view;
    int ms = 0;

    if (!PyArg_ParseTuple(args, "O|i:write", &data, &ms))
        return NULL;
    if (pybpf_get_buffer(data, &view, -1, "data", 0) < 0)
        return NULL;
    sample = pybpf_urb_reserve(self, view.len, ms);
    if (!sample) {
        PyBuffer_Release(&view);
        return NULL;
    }
    memcpy(((PyBPF_Record *)sample)->ptr, view.buf, view.len);
    PyBuffer_Release(&view);
    r = pybpf_urb_commit(op, sample, 1);
    Py_DECREF(sample);
    return r;
}

static int
UserRingBuffer_traverse(PyObject *op, visitproc visit, void *arg)
{
    PyBPF_UserRingBuffer *self = (PyBPF_UserRingBuffer *)op;

    Py_VISIT(self->outstanding);
    return pybpf_reader_traverse(op, visit, arg);
}

static void
UserRingBuffer_free_own(PyObject *op)
{
    Py_CLEAR(((PyBPF_UserRingBuffer *)op)->outstanding);
}

static void
UserRingBuffer_dealloc(PyObject *op)
{
    pybpf_reader_dealloc(op, UserRingBuffer_free_own);
}

static PyObject *
UserRingBuffer_repr(PyObject *op)
{
    return pybpf_reader_repr(op, NULL, 0);
}

static PyMethodDef UserRingBuffer_methods[] = {
    {"reserve", UserRingBuffer_reserve, METH_VARARGS,
     PyDoc_STR("reserve(size, timeout_ms=0): a writable sample of size bytes; waits up to "
               "timeout_ms (-1: forever) for space. BPFError(ENOSPC) when full.")},
    {"submit", UserRingBuffer_submit, METH_O, PyDoc_STR("Publish a reserved sample.")},
    {"discard", UserRingBuffer_discard, METH_O, PyDoc_STR("Drop a reserved sample.")},
    {"write", UserRingBuffer_write, METH_VARARGS,
     PyDoc_STR("write(data, timeout_ms=0): reserve, copy and submit in one call.")},
    {"close", pybpf_reader_close, METH_NOARGS,
     PyDoc_STR("Unmap the ring (idempotent); wakes a reserve() waiting in another thread.")},
    {"fileno", pybpf_fd_fileno, METH_NOARGS,
     PyDoc_STR("Return the epoll fd, readable after the BPF side drained (space freed).")},
    {"__enter__", pybpf_fd_enter_ctx, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))pybpf_fd_exit_ctx, METH_FASTCALL, NULL},
    {NULL},
};

static PyType_Slot UserRingBuffer_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("Writer of BPF user ring buffer maps (user -> kernel).")},
    {Py_tp_new, UserRingBuffer_new},
    {Py_tp_dealloc, UserRingBuffer_dealloc},
    {Py_tp_finalize, pybpf_fd_finalize},
    {Py_tp_traverse, UserRingBuffer_traverse},
    {Py_tp_repr, UserRingBuffer_repr},
    {Py_tp_methods, UserRingBuffer_methods},
    {Py_tp_getset, pybpf_reader_getsets},
    {Py_tp_members, pybpf_reader_members},
    {0, NULL},
};

static PyType_Spec UserRingBuffer_spec = {
    .name = "bpf._bpf.UserRingBuffer",
    .basicsize = sizeof(PyBPF_UserRingBuffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = UserRingBuffer_slots,
};

static int
pybpf_ringbuf_init(PyObject *m, pybpf_state *st)
{
    PyObject *t;

    t = PyType_FromModuleAndSpec(m, &Record_spec, NULL);
    if (!t || PyModule_AddObject(m, "_RingRecord", t) < 0) {
        Py_XDECREF(t);
        return -1;
    }
    if (pybpf_reader_add_type(m, &RingBuffer_spec, "RingBuffer", &st->RingBuffer_Type) < 0 ||
        pybpf_reader_add_type(m, &UserRingBuffer_spec, "UserRingBuffer",
                              &st->UserRingBuffer_Type) < 0)
        return -1;
    return 0;
}
