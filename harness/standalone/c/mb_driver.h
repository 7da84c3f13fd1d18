/* The plan driver's fixed part: what the generated glue (one per program) fills in and
 * what the driver (mb_driver.c) and the native host (mb_host.c) share.
 *
 * A program holds one or more variants (the strategy variants of a comparison group);
 * each variant is a plan: memories, host functions, instances, and two command lists
 * (set-up, per inference) that the driver interprets, like a command buffer. */
#ifndef MB_DRIVER_H
#define MB_DRIVER_H

#include <stdint.h>
#include <stddef.h>

#include "wasm-rt.h"

enum { MB_HOST = 0, MB_EXPORT = 1, MB_BUFFER = 2 };
enum { MB_WRITE = 0, MB_COPY = 1, MB_CALL = 2, MB_READ = 3, MB_COUNT = 4 };

/* counters every variant has, in this order; plan `Count` counters follow */
enum {
  MB_C_BYTES_COPIED = 0, MB_C_CALLS, MB_C_HOST_CALLS, MB_C_BYTES_WRITTEN, MB_C_BYTES_READ,
  MB_C_PAGE_FILLS, MB_C_PAGE_FLUSHES, MB_FIXED_COUNTERS
};
#define MB_MAX_COUNTERS 32
#define MB_MESSAGE 512

typedef struct {
  int kind;
  wasm_rt_memory_t* wasm; /* MB_HOST: owned; MB_EXPORT: the instance's */
  uint8_t* buf;           /* MB_BUFFER */
  uint64_t size;          /* MB_BUFFER */
} MbMem;

typedef struct {
  int memory;
  uint64_t offset, size;
  int writable;
} MbWindow;

typedef struct {
  int op;
  int a;             /* write: tensor; read: output; count: counter; call: call entry */
  int mem, mem2;     /* memory (source for copy/read/count, destination for write) */
  uint64_t off, off2, size;
  int args, nargs;   /* call: index into the variant's argument pool */
  int windows, nwindows;
} MbCmd;

typedef void (*MbCallFn)(void* instance, const uint32_t* args);

typedef struct {
  MbCallFn fn;
  int instance;
} MbCallEntry;

struct MbVariant;

/* a host function of the native catalogue, bound to one variant */
typedef struct {
  struct MbVariant* v;
  int heap, private_mem;
} MbHostFunc;

/* an imported function: the callee and its first argument */
typedef struct {
  void* fn;
  void* ctx;
} MbFn;

typedef struct MbVariant {
  int index;
  const struct MbVariantDesc* desc;
  MbMem* mems;
  void** instances;
  MbHostFunc* hostfuncs;
  uint8_t** outputs;       /* the last inference's outputs */
  const uint8_t** tensors; /* the data tensors, by the variant's tensor index */
  uint64_t counters[MB_MAX_COUNTERS];
  const MbWindow* windows; /* the windows of the call being executed */
  int nwindows;
  double* instantiate_s;
  char message[MB_MESSAGE]; /* why the native host refused an access (then a trap) */
} MbVariant;

typedef struct MbVariantDesc {
  const char* name;
  int nmems, ninstances, nhostfuncs, ntensors, noutputs, ncounters, ndevices;
  const char* const* instance_names;
  const char* const* tensor_names;
  const uint64_t* tensor_sizes;
  const char* const* output_names;
  const uint64_t* output_sizes;
  const char* const* counter_names;
  const char* const* device_names;
  const uint32_t* args;
  const MbWindow* windows;
  const MbCallEntry* calls;
  const MbCmd* setup;
  int nsetup;
  const MbCmd* run;
  int nrun;
  int has_heap_funcs;
  /* memories, host functions, instances (in plan order); may trap */
  void (*load)(MbVariant* v);
  /* per device: wasm memories and linear bytes committed now */
  void (*census)(MbVariant* v, int64_t* memories, int64_t* bytes);
} MbVariantDesc;

extern const MbVariantDesc* const MB_VARIANTS[];
extern const int MB_NVARIANTS;

/* for the glue */
wasm_rt_memory_t* mb_new_memory(MbVariant* v, int index, uint64_t min_pages,
                                uint64_t max_pages, int is64);
void mb_new_buffer(MbVariant* v, int index, uint64_t size);
void mb_export_memory(MbVariant* v, int index, wasm_rt_memory_t* m);
double mb_now(void);

/* the native host (mb_host.c): signatures of harness/runtimes/hostfuncs.py's catalogue */
void mb_host_noop(void* ctx);
float mb_host_load_f32(void* ctx, uint32_t addr);
uint32_t mb_host_load_i32(void* ctx, uint32_t addr);
void mb_host_store_f32(void* ctx, uint32_t addr, float value);
void mb_host_store_i32(void* ctx, uint32_t addr, uint32_t value);
void mb_host_copy_in(void* ctx, uint32_t heap_addr, uint32_t private_addr, uint32_t len);
void mb_host_copy_out(void* ctx, uint32_t private_addr, uint32_t heap_addr, uint32_t len);

uint8_t* mb_mem_base(MbMem* m, uint64_t* size);

#endif
