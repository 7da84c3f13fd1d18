/* The native host: harness/runtimes/hostfuncs.py's catalogue in C, the same semantics
 * (windows, traps, counting before the checks). A refused access writes its reason into
 * the variant's message and traps (WASM_RT_TRAP_OOB), which unwinds the wasm call. */
#include <stdio.h>
#include <string.h>

#include "mb_driver.h"

uint8_t* mb_mem_base(MbMem* m, uint64_t* size) {
  if (m->kind == MB_BUFFER) {
    *size = m->size;
    return m->buf;
  }
  *size = m->wasm->size;
  return m->wasm->data;
}

static void refuse(MbHostFunc* h, const char* kind, const char* what, uint64_t addr,
                   uint64_t n) {
  MbVariant* v = h->v;
  int at = snprintf(v->message, MB_MESSAGE, "host %s: %s heap[%llu, %llu) outside the "
                    "dispatch's windows", kind, what, (unsigned long long)addr,
                    (unsigned long long)(addr + n));
  int any = 0;
  for (int i = 0; i < v->nwindows && at < MB_MESSAGE - 48; i++) {
    const MbWindow* w = &v->windows[i];
    if (w->memory != h->heap) continue;
    at += snprintf(v->message + at, MB_MESSAGE - at, "%s[%llu, %llu)%s", any ? ", " : " ",
                   (unsigned long long)w->offset, (unsigned long long)(w->offset + w->size),
                   w->writable ? "w" : "r");
    any = 1;
  }
  if (!any && at < MB_MESSAGE - 8) snprintf(v->message + at, MB_MESSAGE - at, " (none)");
  wasm_rt_trap(WASM_RT_TRAP_OOB);
}

static int inside(MbHostFunc* h, uint64_t addr, uint64_t n, int write) {
  MbVariant* v = h->v;
  for (int i = 0; i < v->nwindows; i++) {
    const MbWindow* w = &v->windows[i];
    if (w->memory == h->heap && w->offset <= addr && addr + n <= w->offset + w->size &&
        (w->writable || !write))
      return 1;
  }
  return 0;
}

static uint8_t* heap_of(MbHostFunc* h) {
  uint64_t size;
  return mb_mem_base(&h->v->mems[h->heap], &size);
}

void mb_host_noop(void* ctx) {
  MbHostFunc* h = ctx;
  h->v->counters[MB_C_HOST_CALLS]++;
}

/* the heap's 4 bytes at `addr`, after counting the call and checking them against the
 * windows (writable ones for a store); a refusal traps */
static uint8_t* element(void* ctx, const char* kind, uint32_t addr, int write) {
  MbHostFunc* h = ctx;
  h->v->counters[MB_C_HOST_CALLS]++;
  if (!inside(h, addr, 4, write)) refuse(h, kind, write ? "store to" : "load of", addr, 4);
  return heap_of(h) + addr;
}

float mb_host_load_f32(void* ctx, uint32_t addr) {
  float out;
  memcpy(&out, element(ctx, "heap.load_f32", addr, 0), 4);
  return out;
}

uint32_t mb_host_load_i32(void* ctx, uint32_t addr) {
  uint32_t out;
  memcpy(&out, element(ctx, "heap.load_i32", addr, 0), 4);
  return out;
}

void mb_host_store_f32(void* ctx, uint32_t addr, float value) {
  memcpy(element(ctx, "heap.store_f32", addr, 1), &value, 4);
}

void mb_host_store_i32(void* ctx, uint32_t addr, uint32_t value) {
  memcpy(element(ctx, "heap.store_i32", addr, 1), &value, 4);
}

/* the private memory of a page transfer, after its bounds check */
static uint8_t* private_of(MbHostFunc* h, const char* kind, uint64_t p, uint64_t n) {
  uint64_t size;
  uint8_t* priv = mb_mem_base(&h->v->mems[h->private_mem], &size);
  if (p + n > size) {
    snprintf(h->v->message, MB_MESSAGE, "host %s: private[%llu, %llu) outside memory", kind,
             (unsigned long long)p, (unsigned long long)(p + n));
    wasm_rt_trap(WASM_RT_TRAP_OOB);
  }
  return priv;
}

/* the windows' spans inside heap[lo, hi): count; with `apply`, each span is handed over */
static int spans(MbHostFunc* h, uint64_t lo, uint64_t hi, int write, uint8_t* priv,
                 uint64_t p, int to_private) {
  MbVariant* v = h->v;
  uint8_t* heap = heap_of(h);
  int found = 0;
  for (int i = 0; i < v->nwindows; i++) {
    const MbWindow* w = &v->windows[i];
    if (w->memory != h->heap || !(w->writable || !write)) continue;
    uint64_t a = lo > w->offset ? lo : w->offset;
    uint64_t e = w->offset + w->size;
    uint64_t b = hi < e ? hi : e;
    if (a >= b) continue;
    found++;
    if (priv == NULL) continue;
    if (to_private)
      memcpy(priv + p + (a - lo), heap + a, b - a);
    else
      memcpy(heap + a, priv + p + (a - lo), b - a);
  }
  return found;
}

void mb_host_copy_in(void* ctx, uint32_t heap_addr, uint32_t private_addr, uint32_t len) {
  MbHostFunc* h = ctx;
  h->v->counters[MB_C_HOST_CALLS]++;
  h->v->counters[MB_C_PAGE_FILLS]++;
  uint8_t* priv = private_of(h, "heap.copy_in", private_addr, len);
  if (len > 0 && inside(h, heap_addr, len, 0)) { /* one window holds the page: no zero fill */
    memcpy(priv + private_addr, heap_of(h) + heap_addr, len);
    return;
  }
  if (!spans(h, heap_addr, (uint64_t)heap_addr + len, 0, NULL, 0, 1))
    refuse(h, "heap.copy_in", "page fill of", heap_addr, len);
  memset(priv + private_addr, 0, len);
  spans(h, heap_addr, (uint64_t)heap_addr + len, 0, priv, private_addr, 1);
}

void mb_host_copy_out(void* ctx, uint32_t private_addr, uint32_t heap_addr, uint32_t len) {
  MbHostFunc* h = ctx;
  h->v->counters[MB_C_HOST_CALLS]++;
  h->v->counters[MB_C_PAGE_FLUSHES]++;
  uint8_t* priv = private_of(h, "heap.copy_out", private_addr, len);
  if (!spans(h, heap_addr, (uint64_t)heap_addr + len, 1, NULL, 0, 0))
    refuse(h, "heap.copy_out", "page write-back to", heap_addr, len);
  spans(h, heap_addr, (uint64_t)heap_addr + len, 1, priv, private_addr, 0);
}
