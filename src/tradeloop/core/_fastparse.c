/*
 * tradeloop.core._fastparse: C accelerator for the market-data hot path (see core/fastparse.py).
 *
 * parse_fixed(s) -> int
 *     Fast path for an exact ``str`` that is compact ASCII and looks like ``[+-]digits[.digits]``
 *     (at least one digit, at most 9 decimals) whose value in nanos fits in int64, read in place
 *     from the string's ASCII buffer. Everything else (exponents, more than 9 decimals, whitespace,
 *     non-ASCII, str subclasses, non-str objects, values beyond int64) is handed to the pure-Python
 *     ``tradeloop.core.fixed.parse``, so results and exceptions are identical to it by construction.
 *
 * parse_levels(levels) -> list[tuple[int, int]]
 *     The venue ``[[price, size], ...]`` shape. Lists and tuples (of lists or tuples) are read
 *     directly; any other iterable / sequence goes through the generic protocols with the same
 *     semantics as the Python version (``len(level) < 2`` -> ValueError, ``level[0]``, ``level[1]``).
 *
 * parse_levels_json(data) -> list[tuple[int, int]]
 *     ``parse_levels(json.loads(data))`` straight from the JSON text of a levels array (any buffer,
 *     e.g. a msgspec.Raw field): no intermediate str, list or tuple objects. Anything but plain
 *     ``["decimal", "decimal"]`` pairs takes the two-step path, so results and exceptions match it.
 *
 * levels_json_strings(data) -> list[tuple[int, int]] | None
 *     The same for levels made only of plain strings, any number of them after price and size
 *     (OKX's ``[px, sz, "0", orders]``); None for any other shape (the caller's typed decoder decides).
 *
 * PriceLadder, apply_side(levels, side, prices, sign)
 *     The order book's per-side update (``OrderBook._apply_side``) in C, on a list or on a
 *     PriceLadder (an int64 array of the side's sorted price keys).
 *
 * checksum_text_interleaved(...), checksum_text_digits(...) -> bytes | None
 *     The text venues compute their book checksums over (OKX, Kraken), written straight from the
 *     book's sides; None for anything but int64 values (the Python formatting then decides).
 *
 * Only the result objects are allocated; no UB on any input (sanitizer-checked), and a Python
 * callback that mutates an input during a fallback call cannot make the C code read out of bounds.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define SCALE_DIGITS 9

static const uint64_t POW10[SCALE_DIGITS + 1] = {
    1ULL,         10ULL,         100ULL,         1000ULL,         10000ULL,
    100000ULL,    1000000ULL,    10000000ULL,    100000000ULL,    1000000000ULL,
};

/* INT64_MAX / 10**i: the largest mantissa that can be scaled by 10**i without overflow. */
static const uint64_t MAX_BEFORE_SHIFT[SCALE_DIGITS + 1] = {
    9223372036854775807ULL, 922337203685477580ULL, 92233720368547758ULL, 9223372036854775ULL,
    922337203685477ULL,     92233720368547ULL,     9223372036854ULL,     922337203685ULL,
    92233720368ULL,         9223372036ULL,
};

typedef struct {
    PyObject *py_parse;   /* tradeloop.core.fixed.parse */
    PyObject *json_loads; /* json.loads, for parse_levels_json's general path */
    PyTypeObject *ladder_type; /* PriceLadder */
    PyObject *zero;     /* int 0, for level[0] on generic sequences */
    PyObject *one;      /* int 1 */
} module_state;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/*
 * The fast path on ASCII bytes ``[p, end)``: ``[+-]digits[.digits]`` with at least one digit, at
 * most 9 decimals and a value in nanos that fits in int64. Returns 1 and stores the nanos in *out,
 * or 0 when the text must go to the Python implementation. Never raises, never allocates.
 */
static inline int
parse_ascii(const unsigned char *p, const unsigned char *end, int64_t *out)
{
    const uint64_t limit = (uint64_t)INT64_MAX;
    uint64_t value = 0; /* the mantissa: integer and fraction digits */
    int negative = 0;
    int ndigits = 0;
    int frac = -1; /* number of fraction digits once the dot is seen */

    if (p < end && (*p == '-' || *p == '+')) {
        negative = (*p == '-');
        p++;
    }
    for (; p < end; p++) {
        unsigned int d = (unsigned int)*p - (unsigned int)'0';
        if (d <= 9) {
            /* Below 18 digits value < 10**18 and value * 10 + 9 cannot overflow; past it, check. */
            if (ndigits >= 18 && value > (limit - d) / 10) {
                return 0;
            }
            value = value * 10 + d;
            ndigits++;
            if (frac >= 0 && ++frac > SCALE_DIGITS) {
                return 0; /* more than 9 decimals: Python decides (trailing zeros are allowed) */
            }
        }
        else if (*p == '.' && frac < 0) {
            frac = 0;
        }
        else {
            return 0;
        }
    }
    if (ndigits == 0) {
        return 0;
    }
    int shift = SCALE_DIGITS - (frac < 0 ? 0 : frac);
    if (value > MAX_BEFORE_SHIFT[shift]) {
        return 0;
    }
    value *= POW10[shift];
    *out = negative ? -(int64_t)value : (int64_t)value;
    return 1;
}

/* The fast path for an exact, compact-ASCII ``str``; anything else returns 0 (Python decides). */
static inline int
fast_parse(PyObject *obj, int64_t *out)
{
    if (!PyUnicode_CheckExact(obj) || !PyUnicode_IS_COMPACT_ASCII(obj)) {
        return 0;
    }
    const unsigned char *p = (const unsigned char *)PyUnicode_1BYTE_DATA(obj);
    return parse_ascii(p, p + PyUnicode_GET_LENGTH(obj), out);
}

/* New reference to the nanos of ``obj``, or NULL with an exception set. */
static inline PyObject *
parse_one(module_state *st, PyObject *obj)
{
    int64_t v;
    if (fast_parse(obj, &v)) {
        return PyLong_FromLongLong((long long)v);
    }
    return PyObject_CallOneArg(st->py_parse, obj);
}

static PyObject *
parse_fixed(PyObject *module, PyObject *arg)
{
    return parse_one(get_state(module), arg);
}

/* New reference to the (price, size) tuple for one level, or NULL with an exception set. */
static PyObject *
parse_level(module_state *st, PyObject *level)
{
    PyObject *price_s, *size_s;
    if (PyList_CheckExact(level) || PyTuple_CheckExact(level)) {
        Py_ssize_t n = PyList_CheckExact(level) ? PyList_GET_SIZE(level) : PyTuple_GET_SIZE(level);
        if (n < 2) {
            PyErr_Format(PyExc_ValueError, "book level needs price and size, got %R", level);
            return NULL;
        }
        if (PyList_CheckExact(level)) {
            price_s = PyList_GET_ITEM(level, 0);
            size_s = PyList_GET_ITEM(level, 1);
        }
        else {
            price_s = PyTuple_GET_ITEM(level, 0);
            size_s = PyTuple_GET_ITEM(level, 1);
        }
        /* Held across the parse: the Python fallback may run code that mutates a list level. */
        Py_INCREF(price_s);
        Py_INCREF(size_s);
    }
    else {
        Py_ssize_t n = PyObject_Size(level);
        if (n < 0) {
            return NULL;
        }
        if (n < 2) {
            PyErr_Format(PyExc_ValueError, "book level needs price and size, got %R", level);
            return NULL;
        }
        price_s = PyObject_GetItem(level, st->zero);
        if (price_s == NULL) {
            return NULL;
        }
        size_s = PyObject_GetItem(level, st->one);
        if (size_s == NULL) {
            Py_DECREF(price_s);
            return NULL;
        }
    }

    PyObject *result = NULL;
    PyObject *price = parse_one(st, price_s);
    if (price != NULL) {
        PyObject *size = parse_one(st, size_s);
        if (size != NULL) {
            result = PyTuple_New(2);
            if (result != NULL) {
                PyTuple_SET_ITEM(result, 0, price);
                PyTuple_SET_ITEM(result, 1, size);
            }
            else {
                Py_DECREF(price);
                Py_DECREF(size);
            }
        }
        else {
            Py_DECREF(price);
        }
    }
    Py_DECREF(price_s);
    Py_DECREF(size_s);
    return result;
}

static PyObject *
parse_levels(PyObject *module, PyObject *levels)
{
    module_state *st = get_state(module);
    PyObject *seq;
    if (PyList_CheckExact(levels) || PyTuple_CheckExact(levels)) {
        seq = Py_NewRef(levels);
    }
    else {
        /* Any other iterable: materialize it, as ``for level in levels`` would iterate it. */
        seq = PySequence_List(levels);
        if (seq == NULL) {
            return NULL;
        }
    }
    int is_list = PyList_CheckExact(seq);
    Py_ssize_t n = is_list ? PyList_GET_SIZE(seq) : PyTuple_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level;
        if (is_list) {
            if (PyList_GET_SIZE(seq) != n) {
                /* Only reachable if the Python fallback ran code that resized the input. */
                PyErr_SetString(PyExc_RuntimeError, "levels changed size during parsing");
                goto error;
            }
            level = PyList_GET_ITEM(seq, i);
        }
        else {
            level = PyTuple_GET_ITEM(seq, i);
        }
        Py_INCREF(level);
        PyObject *pair = parse_level(st, level);
        Py_DECREF(level);
        if (pair == NULL) {
            goto error;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    Py_DECREF(seq);
    return out;

error:
    Py_DECREF(seq);
    Py_DECREF(out); /* unfilled slots are NULL; list_dealloc uses Py_XDECREF */
    return NULL;
}

/* -- levels straight from JSON text ------------------------------------------------------------- */

static inline const unsigned char *
skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/*
 * One JSON string holding a decimal, at ``*pp`` (which points at the opening quote). On success
 * advances ``*pp`` past the closing quote and returns a new reference to the nanos. Returns NULL
 * *without* an exception for anything the fast path does not take (escapes, non-ASCII, control
 * characters, unterminated), and NULL with an exception if the Python parser rejected the text.
 */
static PyObject *
json_decimal(module_state *st, const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    if (p >= end || *p != '"') {
        return NULL;
    }
    const unsigned char *start = ++p;
    while (p < end && *p != '"') {
        if (*p == '\\' || *p < 0x20 || *p >= 0x80) {
            return NULL;
        }
        p++;
    }
    if (p >= end) {
        return NULL;
    }
    *pp = p + 1;
    int64_t v;
    if (parse_ascii(start, p, &v)) {
        return PyLong_FromLongLong((long long)v);
    }
    /* Plain ASCII but not the fast shape (exponent, > 9 decimals, ...): the Python parser decides. */
    PyObject *text = PyUnicode_DecodeASCII((const char *)start, p - start, NULL);
    if (text == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_CallOneArg(st->py_parse, text);
    Py_DECREF(text);
    return value;
}

/*
 * The fast path of parse_levels_json over ``[p, end)``: a JSON array of ``["price", "size"]``
 * pairs of plain decimal strings, optional whitespace. Returns a new list, or NULL without an
 * exception when the general path must decide, or NULL with an exception (memory errors only;
 * a parse error is cleared and re-raised by the general path, which sees the whole document).
 */
static PyObject *
levels_from_json(module_state *st, const unsigned char *p, const unsigned char *end)
{
    p = skip_ws(p, end);
    if (p >= end || *p != '[') {
        return NULL;
    }
    p = skip_ws(p + 1, end);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    if (p < end && *p == ']') {
        p++;
        goto done;
    }
    for (;;) {
        if (p >= end || *p != '[') {
            goto general;
        }
        p = skip_ws(p + 1, end);
        PyObject *price = json_decimal(st, &p, end);
        if (price == NULL) {
            goto general;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            Py_DECREF(price);
            goto general;
        }
        p = skip_ws(p + 1, end);
        PyObject *size = json_decimal(st, &p, end);
        if (size == NULL) {
            Py_DECREF(price);
            goto general;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ']') { /* more than two items: the general path */
            Py_DECREF(price);
            Py_DECREF(size);
            goto general;
        }
        p = skip_ws(p + 1, end);
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(price);
            Py_DECREF(size);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, price);
        PyTuple_SET_ITEM(pair, 1, size);
        int rc = PyList_Append(out, pair);
        Py_DECREF(pair);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            p++;
            break;
        }
        goto general;
    }
done:
    if (skip_ws(p, end) != end) {
        goto general;
    }
    return out;
general:
    PyErr_Clear(); /* a rejected decimal: the general path raises what ``json.loads`` + parse would */
    Py_DECREF(out);
    return NULL;
}

/*
 * Skip one JSON string at ``*pp`` (its opening quote) made of printable ASCII without escapes.
 * Returns 1 and advances past the closing quote, or 0 (anything else; nothing consumed).
 */
static inline int
skip_plain_string(const unsigned char **pp, const unsigned char *end)
{
    const unsigned char *p = *pp;
    if (p >= end || *p != '"') {
        return 0;
    }
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\' || *p < 0x20 || *p >= 0x80) {
            return 0;
        }
    }
    if (p >= end) {
        return 0;
    }
    *pp = p + 1;
    return 1;
}

/*
 * levels_json_strings(data) -> list[tuple[int, int]] | None
 * A JSON array of levels whose items are all plain strings (``["px", "sz", "0", "3"]``: at least two,
 * later ones ignored), straight from the text: exactly ``parse_levels(json.loads(data))`` for that
 * shape. None (no exception) for any other shape, so a caller that needs the items to be strings
 * (as a typed decoder would) can take its general path; a decimal the parser rejects raises.
 */
static PyObject *
levels_json_strings(PyObject *module, PyObject *data)
{
    module_state *st = get_state(module);
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)view.buf;
    const unsigned char *end = p + view.len;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    p = skip_ws(p, end);
    if (p >= end || *p != '[') {
        goto other;
    }
    p = skip_ws(p + 1, end);
    if (p < end && *p == ']') {
        p++;
        goto done;
    }
    for (;;) {
        if (p >= end || *p != '[') {
            goto other;
        }
        p = skip_ws(p + 1, end);
        PyObject *price = json_decimal(st, &p, end);
        if (price == NULL) {
            goto fail_or_other;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            Py_DECREF(price);
            goto other;
        }
        p = skip_ws(p + 1, end);
        PyObject *size = json_decimal(st, &p, end);
        if (size == NULL) {
            Py_DECREF(price);
            goto fail_or_other;
        }
        p = skip_ws(p, end);
        while (p < end && *p == ',') { /* further items: plain strings, ignored */
            p = skip_ws(p + 1, end);
            if (!skip_plain_string(&p, end)) {
                Py_DECREF(price);
                Py_DECREF(size);
                goto other;
            }
            p = skip_ws(p, end);
        }
        if (p >= end || *p != ']') {
            Py_DECREF(price);
            Py_DECREF(size);
            goto other;
        }
        p = skip_ws(p + 1, end);
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(price);
            Py_DECREF(size);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, price);
        PyTuple_SET_ITEM(pair, 1, size);
        int rc = PyList_Append(out, pair);
        Py_DECREF(pair);
        if (rc < 0) {
            goto error;
        }
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            p++;
            break;
        }
        goto other;
    }
done:
    if (skip_ws(p, end) != end) {
        goto other;
    }
    PyBuffer_Release(&view);
    return out;
fail_or_other:
    if (PyErr_Occurred()) {
        goto error; /* the Python parser rejected a decimal */
    }
other:
    Py_DECREF(out);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
error:
    Py_DECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

PyDoc_STRVAR(levels_json_strings_doc,
             "levels_json_strings(data, /)\n--\n\n"
             "parse_levels(json.loads(data)) for a JSON array of levels made only of plain strings (at least\n"
             "two per level; later ones ignored, as OKX's [px, sz, \"0\", orders]); None for any other shape.");

static PyObject *parse_levels(PyObject *module, PyObject *levels);

static PyObject *
parse_levels_json(PyObject *module, PyObject *data)
{
    module_state *st = get_state(module);
    PyObject *doc = NULL;
    if (PyObject_CheckBuffer(data)) {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        const unsigned char *p = (const unsigned char *)view.buf;
        PyObject *out = levels_from_json(st, p, p + view.len);
        if (out != NULL || PyErr_Occurred()) {
            PyBuffer_Release(&view);
            return out;
        }
        /* General path: json.loads wants str, bytes or bytearray. */
        doc = PyBytes_CheckExact(data) || PyByteArray_CheckExact(data)
                  ? Py_NewRef(data)
                  : PyBytes_FromStringAndSize((const char *)view.buf, view.len);
        PyBuffer_Release(&view);
        if (doc == NULL) {
            return NULL;
        }
    }
    else {
        doc = Py_NewRef(data);
    }
    PyObject *levels = PyObject_CallOneArg(st->json_loads, doc);
    Py_DECREF(doc);
    if (levels == NULL) {
        return NULL;
    }
    PyObject *out = parse_levels(module, levels);
    Py_DECREF(levels);
    return out;
}

PyDoc_STRVAR(parse_levels_json_doc,
             "parse_levels_json(data, /)\n--\n\n"
             "parse_levels(json.loads(data)) without the intermediate objects: data is the JSON text of a\n"
             "[[price, size], ...] array (bytes, bytearray, memoryview, msgspec.Raw or anything with the\n"
             "buffer protocol; a buffer that is not bytes is read as bytes). Results and exception types\n"
             "are those of the two-step form.");

/* -- PriceLadder ------------------------------------------------------------------------------- */

/*
 * A list-like array of int64 price keys for one book side (sorted by the book, best last). Reading
 * it needs no pointer chasing, so the binary searches of apply_side stay in cache; inserting and
 * deleting near the best level moves a few bytes. Holds only ints that fit in int64: anything else
 * raises OverflowError (TypeError for a non-int) and the book falls back to a plain list.
 */
typedef struct {
    PyObject_HEAD
    Py_ssize_t size;
    Py_ssize_t capacity;
    int64_t *items;
} Ladder;

static int
ladder_value(PyObject *obj, int64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "PriceLadder holds ints, not %.200s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "price does not fit in a PriceLadder (int64)");
        return -1;
    }
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int
ladder_reserve(Ladder *self, Py_ssize_t need)
{
    if (need <= self->capacity) {
        return 0;
    }
    Py_ssize_t cap = self->capacity < 16 ? 16 : self->capacity;
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(int64_t)) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    int64_t *items = PyMem_Realloc(self->items, (size_t)cap * sizeof(int64_t));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->items = items;
    self->capacity = cap;
    return 0;
}

static int
ladder_append(Ladder *self, int64_t v)
{
    if (ladder_reserve(self, self->size + 1) < 0) {
        return -1;
    }
    self->items[self->size++] = v;
    return 0;
}

static int
ladder_extend(Ladder *self, PyObject *iterable)
{
    PyObject *it = PyObject_GetIter(iterable);
    if (it == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        int64_t v;
        int rc = ladder_value(item, &v);
        Py_DECREF(item);
        if (rc < 0 || ladder_append(self, v) < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *
ladder_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *iterable = NULL;
    static char *kwlist[] = {"iterable", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:PriceLadder", kwlist, &iterable)) {
        return NULL;
    }
    Ladder *self = (Ladder *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->size = 0;
    self->capacity = 0;
    self->items = NULL;
    if (iterable != NULL && ladder_extend(self, iterable) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
ladder_dealloc(Ladder *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyMem_Free(self->items);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static Py_ssize_t
ladder_len(Ladder *self)
{
    return self->size;
}

static PyObject *
ladder_tolist_range(Ladder *self, Py_ssize_t start, Py_ssize_t step, Py_ssize_t n)
{
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong((long long)self->items[start + i * step]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

static PyObject *
ladder_item(Ladder *self, Py_ssize_t i)
{
    if (i < 0 || i >= self->size) {
        PyErr_SetString(PyExc_IndexError, "PriceLadder index out of range");
        return NULL;
    }
    return PyLong_FromLongLong((long long)self->items[i]);
}

static PyObject *
ladder_subscript(Ladder *self, PyObject *key)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (i < 0) {
            i += self->size;
        }
        return ladder_item(self, i);
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
            return NULL;
        }
        Py_ssize_t n = PySlice_AdjustIndices(self->size, &start, &stop, step);
        return ladder_tolist_range(self, start, step, n);
    }
    PyErr_Format(PyExc_TypeError, "PriceLadder indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
}

static PyObject *
ladder_tolist(Ladder *self, PyObject *Py_UNUSED(ignored))
{
    return ladder_tolist_range(self, 0, 1, self->size);
}

static PyObject *
ladder_clear(Ladder *self, PyObject *Py_UNUSED(ignored))
{
    self->size = 0;
    Py_RETURN_NONE;
}

static PyObject *
ladder_reduce(Ladder *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *items = ladder_tolist_range(self, 0, 1, self->size);
    if (items == NULL) {
        return NULL;
    }
    return Py_BuildValue("(O(N))", (PyObject *)Py_TYPE(self), items);
}

static PyObject *
ladder_repr(Ladder *self)
{
    PyObject *items = ladder_tolist_range(self, 0, 1, self->size);
    if (items == NULL) {
        return NULL;
    }
    PyObject *out = PyUnicode_FromFormat("PriceLadder(%R)", items);
    Py_DECREF(items);
    return out;
}

static PyObject *
ladder_richcompare(Ladder *self, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !(PyList_Check(other) || PyObject_TypeCheck(other, Py_TYPE(self)))) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *mine = ladder_tolist_range(self, 0, 1, self->size);
    if (mine == NULL) {
        return NULL;
    }
    PyObject *theirs = PyList_Check(other) ? Py_NewRef(other)
                                           : ladder_tolist_range((Ladder *)other, 0, 1, ((Ladder *)other)->size);
    if (theirs == NULL) {
        Py_DECREF(mine);
        return NULL;
    }
    PyObject *res = PyObject_RichCompare(mine, theirs, op);
    Py_DECREF(mine);
    Py_DECREF(theirs);
    return res;
}

/*
 * First index whose item is > k (right) or >= k (left): bisect_right / bisect_left. Branch-free
 * (the halving step compiles to a conditional move): a binary search over random positions
 * mispredicts about every other branch otherwise.
 */
static inline Py_ssize_t
ladder_bisect(const Ladder *self, int64_t k, int right)
{
    Py_ssize_t n = self->size;
    if (n == 0) {
        return 0;
    }
    const int64_t *base = self->items;
    if (right) {
        while (n > 1) {
            Py_ssize_t half = n / 2;
            base = (base[half] <= k) ? base + half : base;
            n -= half;
        }
        return (Py_ssize_t)(base - self->items) + (*base <= k);
    }
    while (n > 1) {
        Py_ssize_t half = n / 2;
        base = (base[half] < k) ? base + half : base;
        n -= half;
    }
    return (Py_ssize_t)(base - self->items) + (*base < k);
}

static int
ladder_insert(Ladder *self, Py_ssize_t at, int64_t k)
{
    if (ladder_reserve(self, self->size + 1) < 0) {
        return -1;
    }
    memmove(self->items + at + 1, self->items + at, (size_t)(self->size - at) * sizeof(int64_t));
    self->items[at] = k;
    self->size++;
    return 0;
}

static void
ladder_delete(Ladder *self, Py_ssize_t at)
{
    memmove(self->items + at, self->items + at + 1, (size_t)(self->size - at - 1) * sizeof(int64_t));
    self->size--;
}

static PyMethodDef ladder_methods[] = {
    {"tolist", (PyCFunction)ladder_tolist, METH_NOARGS, "The keys as a list of ints."},
    {"clear", (PyCFunction)ladder_clear, METH_NOARGS, "Remove every key."},
    {"__reduce__", (PyCFunction)ladder_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ladder_slots[] = {
    {Py_tp_doc, "PriceLadder(iterable=(), /)\n--\n\n"
                "Array of int64 book price keys (sorted by its owner, best last); reads like a list of ints."},
    {Py_tp_new, ladder_new},
    {Py_tp_dealloc, ladder_dealloc},
    {Py_tp_repr, ladder_repr},
    {Py_tp_richcompare, ladder_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, ladder_methods},
    {Py_sq_length, ladder_len},
    {Py_sq_item, ladder_item},
    {Py_mp_length, ladder_len},
    {Py_mp_subscript, ladder_subscript},
    {0, NULL},
};

static PyType_Spec ladder_spec = {
    .name = "tradeloop.core._fastparse.PriceLadder",
    .basicsize = sizeof(Ladder),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ladder_slots,
};

/* -- order book side ---------------------------------------------------------------------------- */

/*
 * ``a < b`` for the book's price keys. Exact ints that fit in int64 (every real price) compare as C
 * integers, without a rich-comparison call; anything else goes through PyObject_RichCompareBool.
 * Returns 1, 0, or -1 with an exception set.
 */
static inline int
as_int64(PyObject *obj, int64_t *out)
{
    if (!PyLong_CheckExact(obj)) {
        return 0;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        return 0;
    }
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

/*
 * Binary search over a list that Python code run by a comparison could mutate: every probe is
 * bounds-checked and the probed item held. ``right`` selects bisect_right (insort) over
 * bisect_left. Returns the index, or -1 with an exception set.
 */
static Py_ssize_t
bisect_list(PyObject *list, PyObject *key, int right)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(list);
    int64_t k;
    if (as_int64(key, &k)) {
        /* Fast path: exact int64 items compare in C; any other item falls back per probe. */
        while (lo < hi) {
            Py_ssize_t mid = (Py_ssize_t)(((size_t)lo + (size_t)hi) / 2);
            if (mid >= PyList_GET_SIZE(list)) {
                goto resized;
            }
            PyObject *item = PyList_GET_ITEM(list, mid);
            int64_t v;
            int res;
            if (as_int64(item, &v)) {
                res = right ? (k < v) : (v < k);
            }
            else {
                Py_INCREF(item);
                res = right ? PyObject_RichCompareBool(key, item, Py_LT) : PyObject_RichCompareBool(item, key, Py_LT);
                Py_DECREF(item);
                if (res < 0) {
                    return -1;
                }
            }
            if (right ? res : !res) {
                hi = mid;
            }
            else {
                lo = mid + 1;
            }
        }
        return lo;
    }
    while (lo < hi) {
        Py_ssize_t mid = (Py_ssize_t)(((size_t)lo + (size_t)hi) / 2);
        if (mid >= PyList_GET_SIZE(list)) {
            goto resized;
        }
        PyObject *item = PyList_GET_ITEM(list, mid);
        Py_INCREF(item);
        /* bisect_right: key < item -> hi = mid; bisect_left: item < key -> lo = mid + 1 */
        int res = right ? PyObject_RichCompareBool(key, item, Py_LT) : PyObject_RichCompareBool(item, key, Py_LT);
        Py_DECREF(item);
        if (res < 0) {
            return -1;
        }
        if (right ? res : !res) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    return lo;
resized:
    PyErr_SetString(PyExc_RuntimeError, "book price list changed size during update");
    return -1;
}

/* ``qty > 0`` without a call for exact ints. Returns 1, 0, or -1 with an exception set. */
static inline int
is_positive(module_state *st, PyObject *qty)
{
    if (PyLong_CheckExact(qty)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(qty, &overflow);
        if (overflow) {
            return overflow > 0;
        }
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        return v > 0;
    }
    return PyObject_RichCompareBool(qty, st->zero, Py_GT);
}

/* Unpack one level into new references, with the errors of ``price, qty = level``. */
static int
unpack_level(PyObject *level, PyObject **price, PyObject **qty)
{
    if (PyTuple_CheckExact(level) && PyTuple_GET_SIZE(level) == 2) {
        *price = Py_NewRef(PyTuple_GET_ITEM(level, 0));
        *qty = Py_NewRef(PyTuple_GET_ITEM(level, 1));
        return 0;
    }
    PyObject *it = PyObject_GetIter(level);
    if (it == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.200s object", Py_TYPE(level)->tp_name);
        }
        return -1;
    }
    PyObject *items[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        items[i] = PyIter_Next(it);
        if (items[i] == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %d)", i);
            }
            goto fail;
        }
    }
    PyObject *extra = PyIter_Next(it);
    if (extra != NULL) {
        Py_DECREF(extra);
        PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
        goto fail;
    }
    if (PyErr_Occurred()) {
        goto fail;
    }
    Py_DECREF(it);
    *price = items[0];
    *qty = items[1];
    return 0;
fail:
    Py_XDECREF(items[0]);
    Py_XDECREF(items[1]);
    Py_DECREF(it);
    return -1;
}

/* sign * price for sign 1 / -1 (the two the book uses), else the generic product. New reference. */
static inline PyObject *
side_key(PyObject *price, long sign, PyObject *sign_obj)
{
    if (sign == 1) {
        return Py_NewRef(price);
    }
    if (sign == -1) {
        return PyNumber_Negative(price);
    }
    return PyNumber_Multiply(sign_obj, price);
}

/* Apply one level. Returns 0, or -1 with an exception set. */
static int
apply_level(module_state *st, PyObject *price, PyObject *qty, PyObject *side, PyObject *prices, long sign,
            PyObject *sign_obj)
{
    int positive = is_positive(st, qty);
    if (positive < 0) {
        return -1;
    }
    if (positive) {
        /* if price not in side: insort(prices, sign * price) */
        int present = PyDict_Contains(side, price);
        if (present < 0) {
            return -1;
        }
        if (!present) {
            PyObject *key = side_key(price, sign, sign_obj);
            if (key == NULL) {
                return -1;
            }
            Py_ssize_t n = PyList_GET_SIZE(prices);
            Py_ssize_t at;
            if (n == 0) {
                at = 0;
            }
            else {
                /* Fast path for a new best level: append (bisect_right would say n). */
                PyObject *last = PyList_GET_ITEM(prices, n - 1);
                Py_INCREF(last);
                int beyond = PyObject_RichCompareBool(key, last, Py_LT);
                Py_DECREF(last);
                if (beyond < 0) {
                    Py_DECREF(key);
                    return -1;
                }
                at = beyond ? bisect_list(prices, key, 1) : PyList_GET_SIZE(prices);
            }
            int rc = at < 0 ? -1 : PyList_Insert(prices, at, key);
            Py_DECREF(key);
            if (rc < 0) {
                return -1;
            }
        }
        /* side[price] = qty */
        return PyDict_SetItem(side, price, qty);
    }

    /* elif side.pop(price, None) is not None: */
    PyObject *old = PyDict_GetItemWithError(side, price);
    if (old == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int was_none = (old == Py_None);
    if (PyDict_DelItem(side, price) < 0) {
        return -1;
    }
    if (was_none) {
        return 0;
    }
    PyObject *key = side_key(price, sign, sign_obj);
    if (key == NULL) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(prices);
    if (n == 0) {
        Py_DECREF(key);
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    /* if prices[-1] == key: prices.pop() else: del prices[bisect_left(prices, key)] */
    PyObject *last = PyList_GET_ITEM(prices, n - 1);
    Py_INCREF(last);
    int is_last = PyObject_RichCompareBool(last, key, Py_EQ);
    Py_DECREF(last);
    Py_ssize_t at;
    if (is_last < 0) {
        at = -1;
    }
    else if (is_last) {
        at = PyList_GET_SIZE(prices) - 1;
        if (at < 0) {
            PyErr_SetString(PyExc_IndexError, "pop from empty list");
        }
    }
    else {
        at = bisect_list(prices, key, 0);
        if (at >= 0 && at >= PyList_GET_SIZE(prices)) {
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            at = -1;
        }
    }
    Py_DECREF(key);
    if (at < 0) {
        return -1;
    }
    return PyList_SetSlice(prices, at, at + 1, NULL);
}

/* The ladder key ``sign * price`` (sign is 1 or -1). Returns 0, or -1 with OverflowError/TypeError. */
static inline int
ladder_key(PyObject *price, long sign, int64_t *out)
{
    int64_t v;
    if (ladder_value(price, &v) < 0) {
        return -1;
    }
    if (sign == -1) {
        if (v == INT64_MIN) {
            PyErr_SetString(PyExc_OverflowError, "price does not fit in a PriceLadder (int64)");
            return -1;
        }
        v = -v;
    }
    *out = v;
    return 0;
}

/* apply_level for a PriceLadder: the same steps, with the keys as C integers. */
static int
apply_level_ladder(module_state *st, PyObject *price, PyObject *qty, PyObject *side, Ladder *ladder, long sign)
{
    int positive = is_positive(st, qty);
    if (positive < 0) {
        return -1;
    }
    int64_t k;
    if (positive) {
        if (PyLong_CheckExact(price) && PyDict_CheckExact(side)) {
            /*
             * One dict lookup instead of two (``in`` then ``side[price] = qty``). Everything that
             * can fail is done first, so a failure leaves dict and ladder as they were: the key
             * (OverflowError for a price beyond int64) and room for one more key.
             */
            if (ladder_key(price, sign, &k) < 0 || ladder_reserve(ladder, ladder->size + 1) < 0) {
                return -1;
            }
            Py_ssize_t before = PyDict_GET_SIZE(side);
            PyObject *current = PyDict_SetDefault(side, price, qty); /* borrowed */
            if (current == NULL) {
                return -1;
            }
            if (PyDict_GET_SIZE(side) != before) { /* a new level */
                Py_ssize_t n = ladder->size;
                Py_ssize_t at = (n == 0 || k >= ladder->items[n - 1]) ? n : ladder_bisect(ladder, k, 1);
                return ladder_insert(ladder, at, k); /* cannot fail: room reserved */
            }
            return current == qty ? 0 : PyDict_SetItem(side, price, qty);
        }
        int present = PyDict_Contains(side, price);
        if (present < 0) {
            return -1;
        }
        if (!present) {
            if (ladder_key(price, sign, &k) < 0) {
                return -1;
            }
            Py_ssize_t n = ladder->size;
            Py_ssize_t at = (n == 0 || k >= ladder->items[n - 1]) ? n : ladder_bisect(ladder, k, 1);
            if (ladder_insert(ladder, at, k) < 0) {
                return -1;
            }
        }
        return PyDict_SetItem(side, price, qty);
    }
    PyObject *old = PyDict_GetItemWithError(side, price);
    if (old == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int was_none = (old == Py_None);
    if (PyDict_DelItem(side, price) < 0) {
        return -1;
    }
    if (was_none) {
        return 0;
    }
    if (ladder_key(price, sign, &k) < 0) {
        return -1;
    }
    Py_ssize_t n = ladder->size;
    if (n == 0) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    if (ladder->items[n - 1] == k) {
        ladder->size--;
        return 0;
    }
    Py_ssize_t at = ladder_bisect(ladder, k, 0);
    if (at >= n) {
        PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
        return -1;
    }
    ladder_delete(ladder, at);
    return 0;
}

static PyObject *
apply_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "apply_side() takes exactly 4 arguments (%zd given)", nargs);
        return NULL;
    }
    module_state *st = get_state(module);
    PyObject *levels = args[0], *side = args[1], *prices = args[2], *sign_obj = args[3];
    if (!PyDict_Check(side)) {
        PyErr_Format(PyExc_TypeError, "apply_side() side must be a dict, not %.200s", Py_TYPE(side)->tp_name);
        return NULL;
    }
    int is_ladder = Py_IS_TYPE(prices, st->ladder_type);
    if (!is_ladder && !PyList_Check(prices)) {
        PyErr_Format(PyExc_TypeError, "apply_side() prices must be a list or PriceLadder, not %.200s",
                     Py_TYPE(prices)->tp_name);
        return NULL;
    }
    long sign = 0;
    if (PyLong_CheckExact(sign_obj)) {
        int overflow;
        sign = PyLong_AsLongAndOverflow(sign_obj, &overflow);
        if (overflow || (sign != 1 && sign != -1)) {
            sign = 0; /* generic product */
        }
    }
    if (is_ladder && sign == 0) {
        PyErr_SetString(PyExc_TypeError, "apply_side() on a PriceLadder needs sign 1 or -1");
        return NULL;
    }

    /* ``for price, qty in levels``: a list is walked by index (re-reading its size each step, as
       its iterator does); anything else through the iterator protocol. */
    int by_index = PyList_CheckExact(levels);
    PyObject *it = NULL;
    if (!by_index) {
        it = PyObject_GetIter(levels);
        if (it == NULL) {
            return NULL;
        }
    }
    for (Py_ssize_t i = 0;; i++) {
        PyObject *level;
        if (by_index) {
            if (i >= PyList_GET_SIZE(levels)) {
                break;
            }
            level = Py_NewRef(PyList_GET_ITEM(levels, i));
        }
        else {
            level = PyIter_Next(it);
            if (level == NULL) {
                break;
            }
        }
        PyObject *price, *qty;
        int rc = unpack_level(level, &price, &qty);
        Py_DECREF(level);
        if (rc == 0) {
            rc = is_ladder ? apply_level_ladder(st, price, qty, side, (Ladder *)prices, sign)
                           : apply_level(st, price, qty, side, prices, sign, sign_obj);
            Py_DECREF(price);
            Py_DECREF(qty);
        }
        if (rc < 0) {
            Py_XDECREF(it);
            return NULL;
        }
    }
    Py_XDECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- checksum text of a book's top levels ------------------------------------------------------ */

static const char DIGIT_PAIRS[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

/* Longest text of one int64 nanos value: sign, 10 whole digits, dot, 18 decimals (with margin). */
#define NUMBER_TEXT_MAX 40
#define TEXT_DECIMALS_MAX 18

/*
 * Write ``v`` nanos at ``out`` as ``tradeloop.core.fixed.to_str`` would: ``decimals`` < 0 drops
 * trailing zeros (and the dot when no fraction is left); 0..18 writes exactly that many decimals
 * (returns -1 when ``v`` has nonzero digits beyond them: Python raises, the caller falls back). With
 * ``digits_only`` the dot is left out and leading zeros are stripped (Kraken's checksum form:
 * ``to_str(v, d).replace(".", "").lstrip("0")``). Returns the number of chars written.
 */
static int
write_nanos(char *out, int64_t v, int decimals, int digits_only)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t whole = u / POW10[SCALE_DIGITS];
    uint64_t frac = u % POW10[SCALE_DIGITS];
    char digits[NUMBER_TEXT_MAX];
    int n = 0;
    char rev[24]; /* whole's digits, last first, two at a time */
    int rn = 0;
    while (whole >= 100) {
        const char *pair = DIGIT_PAIRS + 2 * (whole % 100);
        rev[rn++] = pair[1];
        rev[rn++] = pair[0];
        whole /= 100;
    }
    if (whole >= 10) {
        rev[rn++] = DIGIT_PAIRS[2 * whole + 1];
        rev[rn++] = DIGIT_PAIRS[2 * whole];
    }
    else {
        rev[rn++] = (char)('0' + (int)whole);
    }
    while (rn) {
        digits[n++] = rev[--rn];
    }
    char f[SCALE_DIGITS]; /* frac < 10**9: one digit, then four pairs */
    f[0] = (char)('0' + (int)(frac / 100000000));
    uint32_t rest = (uint32_t)(frac % 100000000);
    for (int i = 7; i >= 1; i -= 2) {
        const char *pair = DIGIT_PAIRS + 2 * (rest % 100);
        f[i] = pair[0];
        f[i + 1] = pair[1];
        rest /= 100;
    }
    int flen;
    if (decimals < 0) {
        flen = SCALE_DIGITS;
        while (flen > 0 && f[flen - 1] == '0') {
            flen--;
        }
    }
    else if (decimals <= SCALE_DIGITS) {
        for (int i = decimals; i < SCALE_DIGITS; i++) {
            if (f[i] != '0') {
                return -1;
            }
        }
        flen = decimals;
    }
    else {
        flen = SCALE_DIGITS;
    }
    int whole_len = n;
    memcpy(digits + n, f, (size_t)flen);
    n += flen;
    int pad = decimals > SCALE_DIGITS ? decimals - SCALE_DIGITS : 0;
    memset(digits + n, '0', (size_t)pad);
    n += pad;
    int w = 0;
    if (v < 0) {
        out[w++] = '-';
    }
    if (digits_only) {
        int start = 0;
        if (v >= 0) {
            while (start < n && digits[start] == '0') {
                start++;
            }
        }
        memcpy(out + w, digits + start, (size_t)(n - start));
        return w + n - start;
    }
    memcpy(out + w, digits, (size_t)whole_len);
    w += whole_len;
    if (n > whole_len) {
        out[w++] = '.';
        memcpy(out + w, digits + whole_len, (size_t)(n - whole_len));
        w += n - whole_len;
    }
    return w;
}

/* One book side as read by the checksum writers: its price keys (best last) and sizes. */
typedef struct {
    PyObject *keys; /* list or PriceLadder */
    int is_ladder;
    PyObject *sizes; /* dict price -> size */
    int64_t sign;    /* price = sign * key */
    Py_ssize_t n;    /* levels taken (best first) */
} side_view;

/* 1 on success, 0 when the side is not in the handled shape (the caller falls back), -1 on error. */
static int
side_view_init(module_state *st, side_view *view, PyObject *keys, PyObject *sizes, int64_t sign, Py_ssize_t depth)
{
    view->is_ladder = Py_IS_TYPE(keys, st->ladder_type);
    if ((!view->is_ladder && !PyList_CheckExact(keys)) || !PyDict_CheckExact(sizes)) {
        return 0;
    }
    Py_ssize_t len = view->is_ladder ? ((Ladder *)keys)->size : PyList_GET_SIZE(keys);
    view->keys = keys;
    view->sizes = sizes;
    view->sign = sign;
    view->n = depth < len ? depth : len;
    return 1;
}

/* The i-th best level's price and size (i < view->n): 1, 0 (unhandled shape), -1 (error). */
static int
side_level(const side_view *view, Py_ssize_t i, int64_t *price, int64_t *size)
{
    int64_t key;
    if (view->is_ladder) {
        const Ladder *ladder = (const Ladder *)view->keys;
        if (i >= ladder->size) {
            return 0;
        }
        key = ladder->items[ladder->size - 1 - i];
    }
    else {
        Py_ssize_t len = PyList_GET_SIZE(view->keys);
        if (i >= len || !as_int64(PyList_GET_ITEM(view->keys, len - 1 - i), &key)) {
            return 0;
        }
    }
    if (key == INT64_MIN) {
        return 0;
    }
    *price = view->sign * key;
    PyObject *price_obj = PyLong_FromLongLong((long long)*price);
    if (price_obj == NULL) {
        return -1;
    }
    PyObject *size_obj = PyDict_GetItemWithError(view->sizes, price_obj); /* borrowed */
    Py_DECREF(price_obj);
    if (size_obj == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return as_int64(size_obj, size);
}

/* Append one level at ``*w`` ("price" sep "size", or the digits of both): 1, 0 (fall back), -1. */
static int
write_level(char *buf, Py_ssize_t *w, const side_view *view, Py_ssize_t i, int price_decimals, int qty_decimals,
            int digits_only, char sep)
{
    int64_t price, size;
    int rc = side_level(view, i, &price, &size);
    if (rc <= 0) {
        return rc;
    }
    int len = write_nanos(buf + *w, price, price_decimals, digits_only);
    if (len < 0) {
        return 0;
    }
    *w += len;
    if (sep) {
        buf[(*w)++] = sep;
    }
    len = write_nanos(buf + *w, size, qty_decimals, digits_only);
    if (len < 0) {
        return 0;
    }
    *w += len;
    return 1;
}

static int
parse_depth(PyObject *obj, Py_ssize_t *depth)
{
    Py_ssize_t d = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (d == -1 && PyErr_Occurred()) {
        return -1;
    }
    *depth = d < 0 ? 0 : d;
    return 0;
}

/*
 * checksum_text_interleaved(bid_keys, bids, ask_keys, asks, depth) -> bytes | None
 * OKX's layout: ``bidPx:bidSz:askPx:askSz:...`` over the best ``depth`` levels of each side (the
 * longer side's remaining levels continue alone), numbers without trailing zeros.
 */
static PyObject *
checksum_text_interleaved(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "checksum_text_interleaved() takes exactly 5 arguments (%zd given)", nargs);
        return NULL;
    }
    module_state *st = get_state(module);
    Py_ssize_t depth;
    if (parse_depth(args[4], &depth) < 0) {
        return NULL;
    }
    side_view bids, asks;
    int ok = side_view_init(st, &bids, args[0], args[1], 1, depth);
    if (ok > 0) {
        ok = side_view_init(st, &asks, args[2], args[3], -1, depth);
    }
    if (ok <= 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t levels = bids.n + asks.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, levels * (2 * NUMBER_TEXT_MAX + 2));
    if (out == NULL) {
        return NULL;
    }
    char *buf = PyBytes_AS_STRING(out);
    Py_ssize_t w = 0;
    Py_ssize_t most = bids.n > asks.n ? bids.n : asks.n;
    for (Py_ssize_t i = 0; i < most; i++) {
        for (int k = 0; k < 2; k++) {
            const side_view *view = k == 0 ? &bids : &asks;
            if (i >= view->n) {
                continue;
            }
            if (w > 0) {
                buf[w++] = ':';
            }
            int rc = write_level(buf, &w, view, i, -1, -1, 0, ':');
            if (rc <= 0) {
                Py_DECREF(out);
                if (rc < 0) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
        }
    }
    if (_PyBytes_Resize(&out, w) < 0) {
        return NULL;
    }
    return out;
}

/*
 * checksum_text_digits(ask_keys, asks, bid_keys, bids, depth, price_decimals, qty_decimals) -> bytes | None
 * Kraken's layout: the best ``depth`` asks then the best ``depth`` bids, each level's price and size
 * written with the pair's decimals, dot removed, leading zeros stripped, nothing between them.
 */
static PyObject *
checksum_text_digits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "checksum_text_digits() takes exactly 7 arguments (%zd given)", nargs);
        return NULL;
    }
    module_state *st = get_state(module);
    Py_ssize_t depth;
    if (parse_depth(args[4], &depth) < 0) {
        return NULL;
    }
    long price_decimals = PyLong_AsLong(args[5]);
    if (price_decimals == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long qty_decimals = PyLong_AsLong(args[6]);
    if (qty_decimals == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (price_decimals < 0 || price_decimals > TEXT_DECIMALS_MAX || qty_decimals < 0 ||
        qty_decimals > TEXT_DECIMALS_MAX) {
        Py_RETURN_NONE;
    }
    side_view asks, bids;
    int ok = side_view_init(st, &asks, args[0], args[1], -1, depth);
    if (ok > 0) {
        ok = side_view_init(st, &bids, args[2], args[3], 1, depth);
    }
    if (ok <= 0) {
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (asks.n + bids.n) * 2 * NUMBER_TEXT_MAX);
    if (out == NULL) {
        return NULL;
    }
    char *buf = PyBytes_AS_STRING(out);
    Py_ssize_t w = 0;
    for (int k = 0; k < 2; k++) {
        const side_view *view = k == 0 ? &asks : &bids;
        for (Py_ssize_t i = 0; i < view->n; i++) {
            int rc = write_level(buf, &w, view, i, (int)price_decimals, (int)qty_decimals, 1, 0);
            if (rc <= 0) {
                Py_DECREF(out);
                if (rc < 0) {
                    return NULL;
                }
                Py_RETURN_NONE;
            }
        }
    }
    if (_PyBytes_Resize(&out, w) < 0) {
        return NULL;
    }
    return out;
}

PyDoc_STRVAR(checksum_text_interleaved_doc,
             "checksum_text_interleaved(bid_keys, bids, ask_keys, asks, depth, /)\n--\n\n"
             "OKX's checksum text of a book's best ``depth`` levels per side: bidPx:bidSz:askPx:askSz:...\n"
             "(numbers as fixed.to_str writes them). The keys are the book's sorted price keys (best last;\n"
             "asks negated). None when a value is not an int64 (the caller formats in Python).");

PyDoc_STRVAR(checksum_text_digits_doc,
             "checksum_text_digits(ask_keys, asks, bid_keys, bids, depth, price_decimals, qty_decimals, /)\n--\n\n"
             "Kraken's checksum text: the best ``depth`` asks then bids, each price and size written with\n"
             "its decimals, the dot removed and leading zeros stripped. None when a value cannot be written\n"
             "with those decimals or is not an int64 (the caller formats in Python, which raises as before).");

PyDoc_STRVAR(apply_side_doc,
             "apply_side(levels, side, prices, sign, /)\n--\n\n"
             "OrderBook._apply_side in C: apply absolute (price, size) levels (size <= 0 deletes) to one\n"
             "book side, a dict price -> size plus a sorted list of sign * price (best last).");

PyDoc_STRVAR(parse_fixed_doc,
             "parse_fixed(s, /)\n--\n\n"
             "Parse a decimal string into fixed-point nanos (value * 10**9), exactly.\n"
             "Identical to tradeloop.core.fixed.parse, which handles everything but the plain fast path.");

PyDoc_STRVAR(parse_levels_doc,
             "parse_levels(levels, /)\n--\n\n"
             "Turn [[price, size], ...] decimal strings into [(price_nanos, size_nanos), ...].");

static PyMethodDef fastparse_methods[] = {
    {"parse_fixed", (PyCFunction)parse_fixed, METH_O, parse_fixed_doc},
    {"parse_levels", (PyCFunction)parse_levels, METH_O, parse_levels_doc},
    {"parse_levels_json", (PyCFunction)parse_levels_json, METH_O, parse_levels_json_doc},
    {"levels_json_strings", (PyCFunction)levels_json_strings, METH_O, levels_json_strings_doc},
    {"apply_side", (PyCFunction)(void (*)(void))apply_side, METH_FASTCALL, apply_side_doc},
    {"checksum_text_interleaved", (PyCFunction)(void (*)(void))checksum_text_interleaved, METH_FASTCALL,
     checksum_text_interleaved_doc},
    {"checksum_text_digits", (PyCFunction)(void (*)(void))checksum_text_digits, METH_FASTCALL,
     checksum_text_digits_doc},
    {NULL, NULL, 0, NULL},
};

static int
fastparse_exec(PyObject *module)
{
    module_state *st = get_state(module);
    PyObject *fixed = PyImport_ImportModule("tradeloop.core.fixed");
    if (fixed == NULL) {
        return -1;
    }
    st->py_parse = PyObject_GetAttrString(fixed, "parse");
    Py_DECREF(fixed);
    if (st->py_parse == NULL) {
        return -1;
    }
    PyObject *json = PyImport_ImportModule("json");
    if (json == NULL) {
        return -1;
    }
    st->json_loads = PyObject_GetAttrString(json, "loads");
    Py_DECREF(json);
    if (st->json_loads == NULL) {
        return -1;
    }
    st->ladder_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ladder_spec, NULL);
    if (st->ladder_type == NULL || PyModule_AddType(module, st->ladder_type) < 0) {
        return -1;
    }
    st->zero = PyLong_FromLong(0);
    st->one = PyLong_FromLong(1);
    if (st->zero == NULL || st->one == NULL) {
        return -1;
    }
    return 0;
}

static int
fastparse_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = get_state(module);
    if (st != NULL) {
        Py_VISIT(st->py_parse);
        Py_VISIT(st->json_loads);
        Py_VISIT(st->ladder_type);
        Py_VISIT(st->zero);
        Py_VISIT(st->one);
    }
    return 0;
}

static int
fastparse_clear(PyObject *module)
{
    module_state *st = get_state(module);
    if (st != NULL) {
        Py_CLEAR(st->py_parse);
        Py_CLEAR(st->json_loads);
        Py_CLEAR(st->ladder_type);
        Py_CLEAR(st->zero);
        Py_CLEAR(st->one);
    }
    return 0;
}

static void
fastparse_free(void *module)
{
    fastparse_clear((PyObject *)module);
}

static PyModuleDef_Slot fastparse_slots[] = {
    {Py_mod_exec, fastparse_exec},
    {0, NULL},
};

static struct PyModuleDef fastparse_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tradeloop.core._fastparse",
    .m_doc = "C accelerator for decimal strings -> fixed-point nanos (see tradeloop.core.fastparse).",
    .m_size = sizeof(module_state),
    .m_methods = fastparse_methods,
    .m_slots = fastparse_slots,
    .m_traverse = fastparse_traverse,
    .m_clear = fastparse_clear,
    .m_free = fastparse_free,
};

PyMODINIT_FUNC
PyInit__fastparse(void)
{
    return PyModuleDef_Init(&fastparse_module);
}
