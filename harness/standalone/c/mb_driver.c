/* The plan driver: loads every variant of the program (a comparison group), takes each
 * one's cold first inference, warms each up until steady and samples them in rotating
 * passes, as harness/worker/measure.py does (`time_interleaved`); then writes
 * program.json and the first inference's outputs into the output folder.
 *
 * Usage: program CONFIG. CONFIG holds lines `key value...`:
 *   out DIR | blame PATH | clock wall|cpu | mode measure|once
 *   setting NAME VALUE   (measure.py's MeasureSettings, plus slowdown, sample_cost, min_passes)
 *   tensor NAME PATH     (a data tensor's raw little-endian bytes)
 *   variants I...        (the variants to run; all when absent)
 * A trap ends its variant alone (status trapped, with the native host's reason when it
 * refused an access). Before each variant's turn its index is written to the blame file,
 * so that the caller can name the variant a crash of the whole process belongs to. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>
#include <sys/prctl.h>

#include "mb_driver.h"
#include "wasm-rt-exceptions.h"
#include "wasm-rt-impl.h"

typedef struct {
  double warmup_s, warmup_max_s, steady_tol, batch_s, sample_s, slowdown;
  long warmup_runs, steady_window, samples, max_inner, sample_cost, min_passes;
  int cpu_clock, once;
  char out[4096];
  int blame_fd;
} Settings;

static Settings S = {0.05, 2.0, 0.02, 0.001, 0.01, 0.0, 2, 5, 10, 1000000, 4, 10, 0, 0,
                     ".", -1};

typedef struct {
  char name[256];
  uint8_t* data;
  uint64_t size;
} Tensor;

static Tensor tensors[256];
static int ntensors;

static void die(const char* what, const char* detail) {
  fprintf(stderr, "mb_driver: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

double mb_now(void) {
  struct timespec ts;
  clock_gettime(S.cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(S.cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void blame(int index) {
  if (S.blame_fd < 0) return;
  char line[16];
  snprintf(line, sizeof line, "%7d\n", index);
  if (pwrite(S.blame_fd, line, 8, 0) != 8) die("cannot write the blame file", NULL);
}

static void* xcalloc(size_t n, size_t size) {
  void* p = calloc(n ? n : 1, size ? size : 1);
  if (!p) die("out of memory", NULL);
  return p;
}

/* -- memories (called by the glue) ------------------------------------------------------ */
wasm_rt_memory_t* mb_new_memory(MbVariant* v, int index, uint64_t min_pages,
                                uint64_t max_pages, int is64) {
  wasm_rt_memory_t* m = xcalloc(1, sizeof *m);
  wasm_rt_allocate_memory(m, min_pages, max_pages, is64, WASM_DEFAULT_PAGE_SIZE);
  v->mems[index].kind = MB_HOST;
  v->mems[index].wasm = m;
  return m;
}

void mb_new_buffer(MbVariant* v, int index, uint64_t size) {
  v->mems[index].kind = MB_BUFFER;
  v->mems[index].buf = xcalloc(size, 1);
  v->mems[index].size = size;
}

void mb_export_memory(MbVariant* v, int index, wasm_rt_memory_t* m) {
  v->mems[index].kind = MB_EXPORT;
  v->mems[index].wasm = m;
}

/* -- one inference ------------------------------------------------------------------------ */
static uint8_t* at(MbVariant* v, int mem, uint64_t off) {
  uint64_t size;
  return mb_mem_base(&v->mems[mem], &size) + off;
}

static void run_cmds(MbVariant* v, const MbCmd* cmds, int n) {
  const MbVariantDesc* d = v->desc;
  uint64_t* c = v->counters;
  for (int i = 0; i < n; i++) {
    const MbCmd* k = &cmds[i];
    switch (k->op) {
      case MB_WRITE:
        memcpy(at(v, k->mem2, k->off2), v->tensors[k->a], k->size);
        c[MB_C_BYTES_WRITTEN] += k->size;
        break;
      case MB_COPY:
        memmove(at(v, k->mem2, k->off2), at(v, k->mem, k->off), k->size);
        c[MB_C_BYTES_COPIED] += k->size;
        break;
      case MB_CALL: {
        const MbCallEntry* e = &d->calls[k->a];
        v->windows = d->windows + k->windows;
        v->nwindows = k->nwindows;
        e->fn(v->instances[e->instance], d->args + k->args);
        v->windows = NULL;
        v->nwindows = 0;
        c[MB_C_CALLS]++;
        break;
      }
      case MB_READ:
        memcpy(v->outputs[k->a], at(v, k->mem, k->off), k->size);
        c[MB_C_BYTES_READ] += k->size;
        break;
      case MB_COUNT: {
        uint8_t* src = at(v, k->mem, k->off);
        uint64_t value = 0;
        for (uint64_t b = 0; b < k->size; b++) value |= (uint64_t)src[b] << (8 * b);
        c[k->a] += value;
        memset(src, 0, k->size);
        break;
      }
    }
  }
}

/* `n` inferences; the trap code (0: none). One trap point per batch or sample, never per
 * inference: sigsetjmp saves the signal mask, a system call. */
static int run_n(MbVariant* v, long n, int64_t* elapsed_ns) {
  wasm_rt_trap_t code = wasm_rt_impl_try();
  if (code != WASM_RT_TRAP_NONE) {
    v->windows = NULL;
    v->nwindows = 0;
    return (int)code;
  }
  int64_t t0 = now_ns();
  for (long i = 0; i < n; i++) run_cmds(v, v->desc->run, v->desc->nrun);
  if (elapsed_ns) *elapsed_ns = now_ns() - t0;
  return 0;
}

static int load(MbVariant* v, double* setup_s) {
  wasm_rt_trap_t code = wasm_rt_impl_try();
  if (code != WASM_RT_TRAP_NONE) return (int)code;
  v->desc->load(v);
  double t0 = mb_now();
  run_cmds(v, v->desc->setup, v->desc->nsetup);
  *setup_s = mb_now() - t0;
  return 0;
}

/* every command's regions inside their memories as loaded (exported memories' sizes are
 * known only now); 0 or a message */
static const char* check_regions(MbVariant* v, char* msg) {
  const MbVariantDesc* d = v->desc;
  for (int pass = 0; pass < 2; pass++) {
    const MbCmd* cmds = pass ? d->run : d->setup;
    int n = pass ? d->nrun : d->nsetup;
    for (int i = 0; i < n; i++) {
      const MbCmd* k = &cmds[i];
      int mems[2] = {-1, -1};
      uint64_t offs[2] = {k->off, k->off2};
      if (k->op == MB_COPY) { mems[0] = k->mem; mems[1] = k->mem2; }
      else if (k->op == MB_WRITE) { mems[1] = k->mem2; }
      else if (k->op == MB_READ || k->op == MB_COUNT) { mems[0] = k->mem; }
      for (int j = 0; j < 2; j++) {
        if (mems[j] < 0) continue;
        uint64_t size;
        mb_mem_base(&v->mems[mems[j]], &size);
        if (offs[j] + k->size > size) {
          snprintf(msg, MB_MESSAGE, "step %d: region [%llu, %llu) exceeds memory %d (%llu "
                   "bytes)", i, (unsigned long long)offs[j],
                   (unsigned long long)(offs[j] + k->size), mems[j], (unsigned long long)size);
          return msg;
        }
      }
    }
  }
  return NULL;
}

/* -- measurement (harness/worker/measure.py) ---------------------------------------------- */
typedef struct {
  const char* status; /* NULL: alive */
  char message[MB_MESSAGE];
  double first_s, warmup_s, estimate_s, load_s, setup_s;
  long warmup_runs, rewarm_runs, inner, count, nsamples;
  int steady;
  double* samples;
  long* passes;
  uint64_t first_counters[MB_MAX_COUNTERS];
  uint8_t** first_out;
  int64_t* census_mem;
  int64_t* census_bytes;
  long rss_before, rss_after_load;
} Result;

static long rss_now(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * sysconf(_SC_PAGESIZE);
}

static void trapped(MbVariant* v, Result* r, int code) {
  r->status = "trapped";
  if (v->message[0])
    snprintf(r->message, MB_MESSAGE, "TrapError: %s", v->message);
  else
    snprintf(r->message, MB_MESSAGE, "wasm trap: %s", wasm_rt_strerror((wasm_rt_trap_t)code));
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median_of(const double* xs, long n) {
  double* tmp = xcalloc((size_t)n, sizeof *tmp);
  memcpy(tmp, xs, (size_t)n * sizeof *tmp);
  qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
  double m = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
  free(tmp);
  return m;
}

static int is_steady(const double* b, long n) {
  if (n <= S.steady_window) return 0;
  double before = INFINITY, last = INFINITY;
  for (long i = 0; i < n - S.steady_window; i++) before = fmin(before, b[i]);
  for (long i = n - S.steady_window; i < n; i++) last = fmin(last, b[i]);
  return last >= before * (1.0 - S.steady_tol);
}

static long clampl(long x, long lo, long hi) { return x < lo ? lo : (x > hi ? hi : x); }

static int warm_up(MbVariant* v, Result* r) {
  double per = fmax(r->first_s, 1e-9);
  long cap = 1024, n = 0;
  double* batches = xcalloc((size_t)cap, sizeof *batches);
  int64_t start = now_ns();
  for (;;) {
    long batch = clampl((long)ceil(S.batch_s / per), 1, S.max_inner);
    int64_t t0 = now_ns(), spent;
    int code = run_n(v, batch, &spent);
    if (code) { free(batches); return code; }
    int64_t t1 = now_ns();
    per = fmax((double)(t1 - t0) / 1e9 / batch, 1e-9);
    if (n == cap) {
      cap *= 2;
      batches = realloc(batches, (size_t)cap * sizeof *batches);
      if (!batches) die("out of memory", NULL);
    }
    batches[n++] = per;
    r->warmup_runs += batch;
    r->warmup_s = (double)(t1 - start) / 1e9;
    int enough = r->warmup_runs >= S.warmup_runs && r->warmup_s >= S.warmup_s;
    if (enough && is_steady(batches, n)) { r->steady = 1; break; }
    if (r->warmup_s >= S.warmup_max_s) break;
  }
  long w = n < S.steady_window ? n : S.steady_window;
  r->estimate_s = median_of(batches + n - w, w);
  free(batches);
  return 0;
}

static volatile uint32_t busy_sink;

static void busy_work(int64_t ns) {
  int64_t end = now_ns() + ns;
  uint32_t acc = 0;
  while (now_ns() < end) acc = (acc * 1103515245u + 12345u) & 0x7FFFFFFFu;
  busy_sink = acc;
}

/* -- output ------------------------------------------------------------------------------- */
static void json_str(FILE* f, const char* s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void json_counters(FILE* f, const MbVariantDesc* d, const uint64_t* c) {
  fputc('{', f);
  for (int i = 0; i < d->ncounters; i++) {
    if (!d->counter_names[i][0]) continue; /* page counters of a plan without heap funcs */
    fprintf(f, "%s", i ? "," : "");
    json_str(f, d->counter_names[i]);
    fprintf(f, ":%llu", (unsigned long long)c[i]);
  }
  fputc('}', f);
}

static void write_file(const char* dir, const char* name, const uint8_t* data, uint64_t n) {
  char path[8192];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n) die("cannot write", path);
  fclose(f);
}

/* The text after the first `words` words of a config line and the one space after
   them: a path (the last field of its line) may hold spaces. */
static const char* rest_of(const char* line, int words) {
  const char* p = line;
  for (int w = 0; w < words; w++) {
    p += strcspn(p, " ");
    if (*p) p++;
  }
  return p;
}

static void read_config(const char* path, int* alive, int* nalive) {
  FILE* f = fopen(path, "r");
  if (!f) die("cannot open the config", path);
  char line[8192];
  while (fgets(line, sizeof line, f)) {
    char key[64], a[4096], b[4096];
    line[strcspn(line, "\n")] = 0;
    int got = sscanf(line, "%63s %4095s %4095s", key, a, b);
    if (got < 1) continue;
    if (!strcmp(key, "out") && got >= 2) snprintf(S.out, sizeof S.out, "%s", rest_of(line, 1));
    else if (!strcmp(key, "blame") && got >= 2) {
      S.blame_fd = open(rest_of(line, 1), O_WRONLY | O_CREAT, 0600);
      if (S.blame_fd < 0) die("cannot open the blame file", rest_of(line, 1));
    } else if (!strcmp(key, "clock") && got >= 2) S.cpu_clock = !strcmp(a, "cpu");
    else if (!strcmp(key, "mode") && got >= 2) S.once = !strcmp(a, "once");
    else if (!strcmp(key, "setting") && got == 3) {
      double x = atof(b);
      if (!strcmp(a, "warmup_s")) S.warmup_s = x;
      else if (!strcmp(a, "warmup_max_s")) S.warmup_max_s = x;
      else if (!strcmp(a, "steady_tol")) S.steady_tol = x;
      else if (!strcmp(a, "batch_s")) S.batch_s = x;
      else if (!strcmp(a, "sample_s")) S.sample_s = x;
      else if (!strcmp(a, "slowdown")) S.slowdown = x;
      else if (!strcmp(a, "warmup_runs")) S.warmup_runs = (long)x;
      else if (!strcmp(a, "steady_window")) S.steady_window = (long)x;
      else if (!strcmp(a, "samples")) S.samples = (long)x;
      else if (!strcmp(a, "max_inner")) S.max_inner = (long)x;
      else if (!strcmp(a, "sample_cost")) S.sample_cost = (long)x;
      else if (!strcmp(a, "min_passes")) S.min_passes = (long)x;
    } else if (!strcmp(key, "tensor") && got == 3) {
      if (ntensors == 256) die("too many tensors", NULL);
      Tensor* t = &tensors[ntensors++];
      snprintf(t->name, sizeof t->name, "%s", a);
      const char* file = rest_of(line, 2);
      FILE* tf = fopen(file, "rb");
      if (!tf) die("cannot open tensor", file);
      fseek(tf, 0, SEEK_END);
      t->size = (uint64_t)ftell(tf);
      fseek(tf, 0, SEEK_SET);
      t->data = xcalloc(t->size, 1);
      if (fread(t->data, 1, t->size, tf) != t->size) die("cannot read tensor", file);
      fclose(tf);
    } else if (!strcmp(key, "variants")) {
      *nalive = 0;
      char* p = line + strlen("variants");
      char* end;
      for (long x = strtol(p, &end, 10); end != p; x = strtol(p, &end, 10)) {
        if (x < 0 || x >= MB_NVARIANTS) die("no such variant", p);
        alive[(*nalive)++] = (int)x;
        p = end;
      }
    }
  }
  fclose(f);
}

static const char* bind_tensors(MbVariant* v, char* msg) {
  const MbVariantDesc* d = v->desc;
  v->tensors = xcalloc((size_t)d->ntensors, sizeof *v->tensors);
  for (int i = 0; i < d->ntensors; i++) {
    for (int j = 0; j < ntensors; j++)
      if (!strcmp(tensors[j].name, d->tensor_names[i])) {
        if (tensors[j].size != d->tensor_sizes[i]) {
          snprintf(msg, MB_MESSAGE, "tensor %s: %llu bytes given, the plan writes %llu",
                   d->tensor_names[i], (unsigned long long)tensors[j].size,
                   (unsigned long long)d->tensor_sizes[i]);
          return msg;
        }
        v->tensors[i] = tensors[j].data;
      }
    if (!v->tensors[i]) {
      snprintf(msg, MB_MESSAGE, "no data for tensor %s", d->tensor_names[i]);
      return msg;
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) die("usage: program CONFIG", NULL);
  /* a worker killed for a timeout takes its program with it */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int alive[256], nalive = MB_NVARIANTS;
  for (int i = 0; i < MB_NVARIANTS && i < 256; i++) alive[i] = i;
  read_config(argv[1], alive, &nalive);
  wasm_rt_init();

  MbVariant* vs = xcalloc((size_t)MB_NVARIANTS, sizeof *vs);
  Result* rs = xcalloc((size_t)MB_NVARIANTS, sizeof *rs);
  int* ran = xcalloc((size_t)MB_NVARIANTS, sizeof *ran);

  /* load and take the cold first inference of each variant */
  for (int a = 0; a < nalive; a++) {
    int i = alive[a];
    MbVariant* v = &vs[i];
    Result* r = &rs[i];
    const MbVariantDesc* d = MB_VARIANTS[i];
    ran[i] = 1;
    blame(i);
    v->index = i;
    v->desc = d;
    v->mems = xcalloc((size_t)d->nmems, sizeof *v->mems);
    v->instances = xcalloc((size_t)d->ninstances, sizeof *v->instances);
    v->hostfuncs = xcalloc((size_t)d->nhostfuncs, sizeof *v->hostfuncs);
    v->instantiate_s = xcalloc((size_t)d->ninstances, sizeof *v->instantiate_s);
    v->outputs = xcalloc((size_t)d->noutputs, sizeof *v->outputs);
    r->first_out = xcalloc((size_t)d->noutputs, sizeof *r->first_out);
    for (int o = 0; o < d->noutputs; o++) {
      v->outputs[o] = xcalloc(d->output_sizes[o], 1);
      r->first_out[o] = xcalloc(d->output_sizes[o], 1);
    }
    const char* bad = bind_tensors(v, r->message);
    if (bad) { r->status = "crashed"; continue; }
    r->rss_before = rss_now();
    double t0 = mb_now();
    int code = load(v, &r->setup_s);
    r->load_s = mb_now() - t0;
    if (code) { trapped(v, r, code); continue; }
    r->rss_after_load = rss_now();
    if (check_regions(v, r->message)) { r->status = "crashed"; continue; }
    r->census_mem = xcalloc((size_t)d->ndevices, sizeof *r->census_mem);
    r->census_bytes = xcalloc((size_t)d->ndevices, sizeof *r->census_bytes);
    d->census(v, r->census_mem, r->census_bytes);
    memset(v->counters, 0, sizeof v->counters);
    int64_t t1 = now_ns();
    code = run_n(v, 1, NULL);
    r->first_s = (double)(now_ns() - t1) / 1e9;
    if (code) { trapped(v, r, code); continue; }
    memcpy(r->first_counters, v->counters, sizeof v->counters);
    memset(v->counters, 0, sizeof v->counters);
    for (int o = 0; o < d->noutputs; o++)
      memcpy(r->first_out[o], v->outputs[o], d->output_sizes[o]);
  }

  /* warm each up until steady; calibrate its inner loop and its sample count */
  long passes = 0;
  if (!S.once) {
    for (int a = 0; a < nalive; a++) {
      int i = alive[a];
      if (rs[i].status) continue;
      blame(i);
      int code = warm_up(&vs[i], &rs[i]);
      if (code) { trapped(&vs[i], &rs[i], code); continue; }
      Result* r = &rs[i];
      r->inner = clampl((long)ceil(S.sample_s / fmax(r->estimate_s, 1e-9)), 1, S.max_inner);
      double budget = (double)S.samples * S.sample_cost * S.sample_s;
      long floor_ = S.samples < S.min_passes ? S.samples : S.min_passes;
      long fit = (long)(budget / fmax(r->estimate_s * (double)(r->inner + 1), 1e-12));
      r->count = fit < S.samples ? fit : S.samples;
      if (r->count < floor_) r->count = floor_;
      if (r->count > passes) passes = r->count;
      r->samples = xcalloc((size_t)r->count, sizeof *r->samples);
      r->passes = xcalloc((size_t)r->count, sizeof *r->passes);
    }
    /* passes: each living variant one sample, in rotating order */
    for (long k = 0; k < passes; k++) {
      for (int j = 0; j < nalive; j++) {
        int i = alive[(k + j) % nalive];
        Result* r = &rs[i];
        if (r->status) continue;
        if (!((k + 1) * r->count / passes > k * r->count / passes)) continue;
        blame(i);
        int code = run_n(&vs[i], 1, NULL); /* put back what the others evicted */
        if (code) { trapped(&vs[i], r, code); continue; }
        r->rewarm_runs++;
        int64_t t0 = now_ns(), spent;
        code = run_n(&vs[i], r->inner, &spent);
        if (code) { trapped(&vs[i], r, code); continue; }
        if (S.slowdown > 0) busy_work((int64_t)((double)(now_ns() - t0) * S.slowdown));
        r->samples[r->nsamples] = (double)(now_ns() - t0) / 1e9 / (double)r->inner;
        r->passes[r->nsamples++] = k;
      }
    }
  }
  blame(-1);

  char path[8192];
  snprintf(path, sizeof path, "%s/program.json", S.out);
  FILE* f = fopen(path, "w");
  if (!f) die("cannot write", path);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  fprintf(f, "{\"peak_rss\":%ld,\"variants\":[", (long)ru.ru_maxrss * 1024);
  for (int i = 0; i < MB_NVARIANTS; i++) {
    const MbVariantDesc* d = MB_VARIANTS[i];
    MbVariant* v = &vs[i];
    Result* r = &rs[i];
    fprintf(f, "%s\n", i ? "," : "");
    if (!ran[i]) { fprintf(f, "null"); continue; }
    fprintf(f, "{\"name\":");
    json_str(f, d->name);
    fprintf(f, ",\"status\":\"%s\",\"message\":", r->status ? r->status : "ok");
    json_str(f, r->message);
    if (r->status) { fputc('}', f); continue; }
    int64_t* mems = xcalloc((size_t)d->ndevices, sizeof *mems);
    int64_t* bytes = xcalloc((size_t)d->ndevices, sizeof *bytes);
    d->census(v, mems, bytes);
    fprintf(f, ",\"setup_s\":%.9g", r->setup_s);
    fprintf(f, ",\"load_s\":%.9g,\"first_s\":%.9g,\"warmup_runs\":%ld,\"warmup_s\":%.9g,"
            "\"steady\":%s,\"inner\":%ld,\"rewarm_runs\":%ld,\"rss_before\":%ld,"
            "\"rss_after_load\":%ld,\"counters\":", r->load_s, r->first_s, r->warmup_runs,
            r->warmup_s, r->steady ? "true" : "false", r->inner, r->rewarm_runs,
            r->rss_before, r->rss_after_load);
    json_counters(f, d, r->first_counters);
    fprintf(f, ",\"counters_after\":");
    json_counters(f, d, v->counters);
    fprintf(f, ",\"instantiate_s\":{");
    for (int k = 0; k < d->ninstances; k++) {
      fprintf(f, "%s", k ? "," : "");
      json_str(f, d->instance_names[k]);
      fprintf(f, ":%.9g", v->instantiate_s[k]);
    }
    for (int when = 0; when < 2; when++) {
      const int64_t* cm = when ? mems : r->census_mem;
      const int64_t* cb = when ? bytes : r->census_bytes;
      fprintf(f, "},\"%s\":{", when ? "census" : "census_load");
      for (int k = 0; k < d->ndevices; k++) {
        fprintf(f, "%s", k ? "," : "");
        json_str(f, d->device_names[k]);
        fprintf(f, ":[%lld,%lld]", (long long)cm[k], (long long)cb[k]);
      }
    }
    fprintf(f, "},\"samples_s\":[");
    for (long k = 0; k < r->nsamples; k++) fprintf(f, "%s%.9g", k ? "," : "", r->samples[k]);
    fprintf(f, "],\"passes\":[");
    for (long k = 0; k < r->nsamples; k++) fprintf(f, "%s%ld", k ? "," : "", r->passes[k]);
    fprintf(f, "],\"outputs\":{");
    for (int o = 0; o < d->noutputs; o++) {
      char name[512];
      snprintf(name, sizeof name, "v%d_out_%s.bin", i, d->output_names[o]);
      write_file(S.out, name, r->first_out[o], d->output_sizes[o]);
      fprintf(f, "%s", o ? "," : "");
      json_str(f, d->output_names[o]);
      fprintf(f, ":{\"file\":");
      json_str(f, name);
      fprintf(f, ",\"changed\":%s}",
              memcmp(r->first_out[o], v->outputs[o], d->output_sizes[o]) ? "true" : "false");
    }
    fprintf(f, "}}");
  }
  fprintf(f, "\n]}\n");
  if (fclose(f)) die("cannot write", path);
  return 0;
}
