/* A loader for the relocatable x86-64 ELF objects the JIT emits, so that a code-cache hit needs
 * no LLVM: sections are placed in one reservation (code, then constants and a GOT, then data),
 * written while read-write, relocated, and then made read+execute, read-only or left read-write:
 * never writable and executable at once. Invariant: anything this file does not understand
 * (a section type, symbol kind or relocation type, an offset out of bounds) makes it refuse
 * before any code becomes executable; the caller then links the object with LLJIT instead. */
#include "jit/jit_int.h"
#include "platform/platform.h"

#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Objects larger than this are left to LLJIT (the biggest benchmark module's is ~1 MB). */
#define ELF_MAX_IMAGE (256u << 20)
#define ELF_MAX_SECTIONS 4096u
/* A stub for a call to a helper that may lie more than 2 GiB away: jmp *0(%rip); .quad addr. */
#define STUB_BYTES 16u

#ifndef SHT_X86_64_UNWIND
#define SHT_X86_64_UNWIND 0x70000001
#endif
#ifndef R_X86_64_GOTPCRELX
#define R_X86_64_GOTPCRELX 41
#endif
#ifndef R_X86_64_REX_GOTPCRELX
#define R_X86_64_REX_GOTPCRELX 42
#endif

typedef struct elf_global {
    char *name;
    void *addr;
} elf_global;

struct jit_image {
    uint8_t *base;
    size_t size;
    uintptr_t code_lo, code_hi; /* the executable sections (stubs excluded) */
    elf_global *globals;        /* defined global symbols */
    uint32_t nglobals;
};

/* Which part of the image a section goes to. */
enum { PART_NONE = -1, PART_X = 0, PART_R = 1, PART_W = 2 };

typedef struct loader {
    const uint8_t *obj;
    size_t len;
    char *err;
    size_t errlen;
    Elf64_Shdr *sh;
    uint32_t nsh;
    int *part;      /* per section: PART_* */
    uint64_t *addr; /* per section: its address once placed (0 for PART_NONE) */
    uint32_t symsec;
    const Elf64_Sym *syms; /* not aligned in obj: read through sym() */
    uint32_t nsyms;
    const char *strtab;
    size_t strlen_;
    uint64_t *symaddr; /* per symbol: resolved address */
    uint8_t *symok;    /* per symbol: 1 resolved, 2 undefined (external), 0 unusable */
    uint64_t *stub;    /* per symbol: its stub's address (when wstub) */
    uint64_t *got;     /* per symbol: its GOT slot's address (when wgot) */
    uint8_t *wstub;    /* per symbol: called through a stub (R_X86_64_PLT32 to an external) */
    uint8_t *wgot;     /* per symbol: has a GOT slot (R_X86_64_GOTPCREL*) */
} loader;

static int refuse(loader *l, int rc, const char *fmt, ...) {
    if (l->err && l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err, l->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* [off, off + n) lies inside the object. */
static bool in_obj(const loader *l, uint64_t off, uint64_t n) {
    return off <= l->len && n <= l->len - off;
}

static Elf64_Sym sym(const loader *l, uint32_t i) {
    Elf64_Sym s;
    memcpy(&s, (const uint8_t *)l->syms + (size_t)i * sizeof s, sizeof s);
    return s;
}

/* The NUL-terminated name at offset off of the string table, or NULL. */
static const char *sym_name(const loader *l, uint32_t off) {
    if (off >= l->strlen_ || !memchr(l->strtab + off, 0, l->strlen_ - off))
        return NULL;
    return l->strtab + off;
}

static int read_headers(loader *l) {
    Elf64_Ehdr eh;
    if (l->len < sizeof eh)
        return refuse(l, ERR_MALFORMED, "object shorter than an ELF header");
    memcpy(&eh, l->obj, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_ident[EI_VERSION] != EV_CURRENT)
        return refuse(l, ERR_MALFORMED, "not a little-endian ELF64 object");
    if (eh.e_type != ET_REL || eh.e_machine != EM_X86_64)
        return refuse(l, ERR_INVALID, "not a relocatable x86-64 object");
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > ELF_MAX_SECTIONS ||
        !in_obj(l, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr)))
        return refuse(l, ERR_MALFORMED, "section header table out of bounds");
    l->nsh = eh.e_shnum;
    l->sh = xmalloc(l->nsh * sizeof *l->sh);
    memcpy(l->sh, l->obj + eh.e_shoff, l->nsh * sizeof *l->sh);
    l->part = xmalloc(l->nsh * sizeof *l->part);
    l->addr = xcalloc(l->nsh, sizeof *l->addr);
    l->symsec = 0;
    for (uint32_t i = 0; i < l->nsh; i++) {
        const Elf64_Shdr *s = &l->sh[i];
        l->part[i] = PART_NONE;
        if (s->sh_type != SHT_NOBITS && s->sh_type != SHT_NULL &&
            !in_obj(l, s->sh_offset, s->sh_size))
            return refuse(l, ERR_MALFORMED, "section %u out of bounds", i);
        if (s->sh_type == SHT_SYMTAB) {
            if (l->symsec)
                return refuse(l, ERR_INVALID, "two symbol tables");
            l->symsec = i;
        }
        if (s->sh_type == SHT_REL || s->sh_type == SHT_SYMTAB_SHNDX)
            return refuse(l, ERR_INVALID, "section type %u", s->sh_type);
        if (!(s->sh_flags & SHF_ALLOC))
            continue;
        if (s->sh_type != SHT_PROGBITS && s->sh_type != SHT_NOBITS &&
            s->sh_type != SHT_X86_64_UNWIND)
            return refuse(l, ERR_INVALID, "allocated section %u of type %u", i, s->sh_type);
        if (s->sh_flags & SHF_TLS)
            return refuse(l, ERR_INVALID, "thread-local section %u", i);
        bool w = (s->sh_flags & SHF_WRITE) != 0, x = (s->sh_flags & SHF_EXECINSTR) != 0;
        if (w && x)
            return refuse(l, ERR_INVALID, "writable and executable section %u", i);
        if (s->sh_addralign > plat_page_size() || (s->sh_addralign & (s->sh_addralign - 1)) != 0)
            return refuse(l, ERR_INVALID, "section %u alignment %llu", i,
                          (unsigned long long)s->sh_addralign);
        if (s->sh_size > ELF_MAX_IMAGE)
            return refuse(l, ERR_INVALID, "section %u too large", i);
        l->part[i] = x ? PART_X : w ? PART_W : PART_R;
    }
    if (!l->symsec)
        return refuse(l, ERR_MALFORMED, "no symbol table");
    const Elf64_Shdr *st = &l->sh[l->symsec];
    if (st->sh_entsize != sizeof(Elf64_Sym) || st->sh_size % sizeof(Elf64_Sym) != 0 ||
        st->sh_link == 0 || st->sh_link >= l->nsh || l->sh[st->sh_link].sh_type != SHT_STRTAB)
        return refuse(l, ERR_MALFORMED, "bad symbol table");
    l->syms = (const Elf64_Sym *)(const void *)(l->obj + st->sh_offset);
    l->nsyms = (uint32_t)(st->sh_size / sizeof(Elf64_Sym));
    const Elf64_Shdr *ss = &l->sh[st->sh_link];
    l->strtab = (const char *)l->obj + ss->sh_offset;
    l->strlen_ = ss->sh_size;
    return 0;
}

/* A relocation section that applies to an allocated section: its entries, bounds-checked. */
static bool rela_applies(const loader *l, uint32_t i) {
    const Elf64_Shdr *s = &l->sh[i];
    return s->sh_type == SHT_RELA && s->sh_info < l->nsh && l->part[s->sh_info] != PART_NONE;
}

static int check_rela(loader *l, uint32_t i) {
    const Elf64_Shdr *s = &l->sh[i];
    if (s->sh_entsize != sizeof(Elf64_Rela) || s->sh_size % sizeof(Elf64_Rela) != 0 ||
        s->sh_link != l->symsec)
        return refuse(l, ERR_MALFORMED, "bad relocation section %u", i);
    if (l->sh[s->sh_info].sh_type == SHT_NOBITS)
        return refuse(l, ERR_INVALID, "relocations against an empty section");
    return 0;
}

static Elf64_Rela rela(const loader *l, uint32_t i, size_t k) {
    Elf64_Rela r;
    memcpy(&r, l->obj + l->sh[i].sh_offset + k * sizeof r, sizeof r);
    return r;
}

static const jit_helper *find_helper(const jit_helper *h, unsigned n, const char *name) {
    for (unsigned i = 0; i < n; i++)
        if (strcmp(h[i].name, name) == 0)
            return &h[i];
    return NULL;
}

/* Symbol values that do not depend on placement: external symbols (helpers first, then the
 * process's symbols, as the LLJIT path resolves them); kinds this loader cannot place refuse. */
static int resolve_externals(loader *l, const jit_helper *helpers, unsigned nhelpers) {
    l->symaddr = xcalloc(l->nsyms ? l->nsyms : 1, sizeof *l->symaddr);
    l->symok = xcalloc(l->nsyms ? l->nsyms : 1, 1);
    l->stub = xcalloc(l->nsyms ? l->nsyms : 1, sizeof *l->stub);
    l->got = xcalloc(l->nsyms ? l->nsyms : 1, sizeof *l->got);
    for (uint32_t i = 1; i < l->nsyms; i++) {
        Elf64_Sym s = sym(l, i);
        unsigned type = ELF64_ST_TYPE(s.st_info);
        if (type == STT_TLS || type == STT_GNU_IFUNC)
            return refuse(l, ERR_INVALID, "symbol %u of type %u", i, type);
        if (s.st_shndx == SHN_COMMON || s.st_shndx == SHN_XINDEX)
            return refuse(l, ERR_INVALID, "symbol %u in section %u", i, s.st_shndx);
        if (s.st_shndx != SHN_UNDEF)
            continue;
        const char *name = sym_name(l, s.st_name);
        if (!name || !*name)
            return refuse(l, ERR_MALFORMED, "undefined symbol %u without a name", i);
        const jit_helper *h = find_helper(helpers, nhelpers, name);
        void *a = h ? h->addr : plat_process_sym(name);
        if (!a) {
            if (ELF64_ST_BIND(s.st_info) == STB_WEAK)
                continue; /* resolves to 0, as a linker does */
            return refuse(l, ERR_INVALID, "unresolved symbol %s", name);
        }
        l->symaddr[i] = (uint64_t)(uintptr_t)a;
        l->symok[i] = 2;
    }
    return 0;
}

/* Symbols defined in placed sections (after layout). */
static int resolve_defined(loader *l) {
    for (uint32_t i = 1; i < l->nsyms; i++) {
        Elf64_Sym s = sym(l, i);
        if (s.st_shndx == SHN_UNDEF) {
            if (!l->symok[i])
                l->symok[i] = 2; /* weak, unresolved: 0 */
            continue;
        }
        if (s.st_shndx == SHN_ABS) {
            l->symaddr[i] = s.st_value;
            l->symok[i] = 1;
            continue;
        }
        if (s.st_shndx >= l->nsh)
            return refuse(l, ERR_INVALID, "symbol %u in section %u", i, s.st_shndx);
        if (l->part[s.st_shndx] == PART_NONE)
            continue; /* debug or other unplaced section: unusable, refused if referenced */
        if (s.st_value > l->sh[s.st_shndx].sh_size)
            return refuse(l, ERR_MALFORMED, "symbol %u beyond its section", i);
        l->symaddr[i] = l->addr[s.st_shndx] + s.st_value;
        l->symok[i] = 1;
    }
    return 0;
}

static size_t align_up(size_t v, size_t a) {
    return a > 1 ? (v + a - 1) & ~(a - 1) : v;
}

/* Place the sections: part X (code sections, then stubs), R (constants, then the GOT), W. Each
 * part starts on a page. Stubs and GOT slots are counted from the relocations. */
static int layout(loader *l, size_t off[3], size_t size[3], uint32_t *nstub, uint32_t *ngot) {
    size_t page = plat_page_size();
    uint8_t *wants_stub = l->wstub = xcalloc(l->nsyms ? l->nsyms : 1, 1);
    uint8_t *wants_got = l->wgot = xcalloc(l->nsyms ? l->nsyms : 1, 1);
    *nstub = *ngot = 0;
    int rc = 0;
    for (uint32_t i = 0; i < l->nsh && rc == 0; i++) {
        if (!rela_applies(l, i))
            continue;
        if ((rc = check_rela(l, i)) != 0)
            break;
        size_t n = l->sh[i].sh_size / sizeof(Elf64_Rela);
        for (size_t k = 0; k < n; k++) {
            Elf64_Rela r = rela(l, i, k);
            uint32_t si = (uint32_t)ELF64_R_SYM(r.r_info), t = (uint32_t)ELF64_R_TYPE(r.r_info);
            if (si >= l->nsyms) {
                rc = refuse(l, ERR_MALFORMED, "relocation against symbol %u", si);
                break;
            }
            Elf64_Sym s = sym(l, si);
            if (t == R_X86_64_PLT32 && si && s.st_shndx == SHN_UNDEF && !wants_stub[si]) {
                wants_stub[si] = 1;
                (*nstub)++;
            }
            if ((t == R_X86_64_GOTPCREL || t == R_X86_64_GOTPCRELX ||
                 t == R_X86_64_REX_GOTPCRELX) &&
                !wants_got[si]) {
                wants_got[si] = 1;
                (*ngot)++;
            }
        }
    }
    size_t cur[3] = {0, 0, 0};
    for (uint32_t i = 0; i < l->nsh && rc == 0; i++) {
        int p = l->part[i];
        if (p == PART_NONE)
            continue;
        cur[p] = align_up(cur[p], l->sh[i].sh_addralign);
        l->addr[i] = cur[p]; /* an offset in its part until the base is known */
        cur[p] += l->sh[i].sh_size;
        if (cur[p] > ELF_MAX_IMAGE)
            rc = refuse(l, ERR_INVALID, "object too large");
    }
    if (rc == 0) {
        /* Stubs after the code, GOT slots after the constants. */
        size_t so = align_up(cur[PART_X], STUB_BYTES), go = align_up(cur[PART_R], 8);
        cur[PART_X] = so + (size_t)*nstub * STUB_BYTES;
        cur[PART_R] = go + (size_t)*ngot * 8;
        size_t total = 0;
        for (int p = 0; p < 3; p++) {
            off[p] = total;
            size[p] = align_up(cur[p], page);
            total += size[p];
        }
        /* As offsets from the image base until it is mapped. */
        for (uint32_t si = 0; si < l->nsyms; si++) {
            if (wants_stub[si]) {
                l->stub[si] = off[PART_X] + so;
                so += STUB_BYTES;
            }
            if (wants_got[si]) {
                l->got[si] = off[PART_R] + go;
                go += 8;
            }
        }
    }
    return rc;
}

static int apply(loader *l, uint8_t *base, uint32_t i) {
    const Elf64_Shdr *rs = &l->sh[i];
    uint32_t ti = rs->sh_info;
    const Elf64_Shdr *ts = &l->sh[ti];
    size_t n = rs->sh_size / sizeof(Elf64_Rela);
    for (size_t k = 0; k < n; k++) {
        Elf64_Rela r = rela(l, i, k);
        uint32_t si = (uint32_t)ELF64_R_SYM(r.r_info), t = (uint32_t)ELF64_R_TYPE(r.r_info);
        if (t == R_X86_64_NONE)
            continue;
        unsigned width = t == R_X86_64_64 || t == R_X86_64_PC64 ? 8 : 4;
        if (r.r_offset > ts->sh_size || width > ts->sh_size - r.r_offset)
            return refuse(l, ERR_MALFORMED, "relocation %zu of section %u out of bounds", k, i);
        if (si && !l->symok[si])
            return refuse(l, ERR_INVALID, "relocation against unplaced symbol %u", si);
        uint64_t S = si ? l->symaddr[si] : 0, P = l->addr[ti] + r.r_offset;
        uint64_t A = (uint64_t)r.r_addend;
        uint8_t *at = base + (P - (uint64_t)(uintptr_t)base);
        int64_t v;
        switch (t) {
        case R_X86_64_64: {
            uint64_t u = S + A;
            memcpy(at, &u, 8);
            continue;
        }
        case R_X86_64_PC64: {
            uint64_t u = S + A - P;
            memcpy(at, &u, 8);
            continue;
        }
        case R_X86_64_PLT32:
            if (l->wstub[si])
                S = l->stub[si];
            v = (int64_t)(S + A - P);
            break;
        case R_X86_64_PC32: v = (int64_t)(S + A - P); break;
        case R_X86_64_GOTPCREL:
        case R_X86_64_GOTPCRELX:
        case R_X86_64_REX_GOTPCRELX: {
            uint8_t *slot = base + (l->got[si] - (uint64_t)(uintptr_t)base);
            memcpy(slot, &S, 8);
            v = (int64_t)(l->got[si] + A - P);
            break;
        }
        case R_X86_64_32: {
            uint64_t u = S + A;
            if (u > UINT32_MAX)
                return refuse(l, ERR_INVALID, "R_X86_64_32 out of range");
            uint32_t w = (uint32_t)u;
            memcpy(at, &w, 4);
            continue;
        }
        case R_X86_64_32S: v = (int64_t)(S + A); break;
        default: return refuse(l, ERR_INVALID, "relocation type %u", t);
        }
        if (v < INT32_MIN || v > INT32_MAX)
            return refuse(l, ERR_INVALID, "relocation type %u out of range", t);
        int32_t w = (int32_t)v;
        memcpy(at, &w, 4);
    }
    return 0;
}

static void loader_free(loader *l) {
    free(l->sh);
    free(l->part);
    free(l->addr);
    free(l->symaddr);
    free(l->symok);
    free(l->stub);
    free(l->got);
    free(l->wstub);
    free(l->wgot);
}

/* $PSL_JIT_PERFMAP=1 (a profiling aid): every function of a linked image is appended to
 * /tmp/perf-PID.map, where perf looks up the names of code in anonymous mappings. */
static void perf_map(const loader *l) {
    const char *on = getenv("PSL_JIT_PERFMAP");
    if (!on || !*on || *on == '0')
        return;
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%ld.map", (long)getpid());
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    /* names carry the image's link order ("f12/3": the third image linked), so that samples of
     * the auto tier's quick, mid and default copies of a function stay apart */
    static _Atomic unsigned seq;
    unsigned n = ++seq;
    for (uint32_t si = 1; si < l->nsyms; si++) {
        Elf64_Sym s = sym(l, si);
        const char *name = sym_name(l, s.st_name);
        if (ELF64_ST_TYPE(s.st_info) == STT_FUNC && l->symok[si] == 1 && name &&
            s.st_shndx < l->nsh && l->part[s.st_shndx] == PART_X)
            fprintf(f, "%llx %llx %s/%u\n", (unsigned long long)l->symaddr[si],
                    (unsigned long long)s.st_size, name, n);
    }
    fclose(f);
}

int jit__elf_link(const uint8_t *obj, size_t len, const jit_helper *helpers, unsigned nhelpers,
                  jit_image **out, char *err, size_t errlen) {
    loader l = {.obj = obj, .len = len, .err = err, .errlen = errlen};
    jit_image *im = NULL;
    uint8_t *base = NULL;
    size_t off[3], size[3], total = 0;
    uint32_t nstub = 0, ngot = 0;
    *out = NULL;
    int rc = read_headers(&l);
    if (rc == 0)
        rc = resolve_externals(&l, helpers, nhelpers);
    if (rc == 0)
        rc = layout(&l, off, size, &nstub, &ngot);
    if (rc)
        goto fail;
    total = size[0] + size[1] + size[2];
    if (total == 0) {
        rc = refuse(&l, ERR_MALFORMED, "nothing to load");
        goto fail;
    }
    base = plat_vm_reserve(total);
    if (!base || plat_vm_commit(base, total) != 0) {
        rc = refuse(&l, ERR_NOMEM, "cannot map %zu bytes", total);
        goto fail;
    }
    const uint64_t b = (uint64_t)(uintptr_t)base;
    for (uint32_t i = 0; i < l.nsh; i++) {
        if (l.part[i] == PART_NONE)
            continue;
        l.addr[i] += b + off[l.part[i]];
        if (l.sh[i].sh_type != SHT_NOBITS && l.sh[i].sh_size)
            memcpy(base + (l.addr[i] - b), obj + l.sh[i].sh_offset, l.sh[i].sh_size);
    }
    for (uint32_t si = 0; si < l.nsyms; si++) {
        if (l.wstub[si])
            l.stub[si] += b;
        if (l.wgot[si])
            l.got[si] += b;
    }
    if ((rc = resolve_defined(&l)) != 0)
        goto fail;
    for (uint32_t si = 0; si < l.nsyms; si++) {
        if (!l.wstub[si])
            continue;
        uint8_t *p = base + (l.stub[si] - b);
        static const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0}; /* jmp *0(%rip) */
        memcpy(p, jmp, 6);
        memcpy(p + 6, &l.symaddr[si], 8);
        p[14] = p[15] = 0xcc;
    }
    for (uint32_t i = 0; i < l.nsh; i++)
        if (rela_applies(&l, i) && (rc = apply(&l, base, i)) != 0)
            goto fail;
    /* Code read+execute, constants and GOT read-only; only then is anything callable. */
    if ((size[PART_X] && plat_vm_protect_exec(base + off[PART_X], size[PART_X]) != 0) ||
        (size[PART_R] && plat_vm_protect_read(base + off[PART_R], size[PART_R]) != 0)) {
        rc = refuse(&l, ERR_NOMEM, "mprotect failed");
        goto fail;
    }
    perf_map(&l);
    im = xcalloc(1, sizeof *im);
    im->base = base;
    im->size = total;
    im->code_lo = (uintptr_t)base + off[PART_X];
    im->code_hi = im->code_lo;
    for (uint32_t i = 0; i < l.nsh; i++)
        if (l.part[i] == PART_X && l.addr[i] + l.sh[i].sh_size > im->code_hi)
            im->code_hi = (uintptr_t)(l.addr[i] + l.sh[i].sh_size);
    for (uint32_t si = 1; si < l.nsyms; si++) {
        Elf64_Sym s = sym(&l, si);
        unsigned bind = ELF64_ST_BIND(s.st_info);
        if ((bind != STB_GLOBAL && bind != STB_WEAK) || s.st_shndx == SHN_UNDEF || l.symok[si] != 1)
            continue;
        const char *name = sym_name(&l, s.st_name);
        if (!name)
            continue;
        im->globals = xrealloc(im->globals, (im->nglobals + 1) * sizeof *im->globals);
        im->globals[im->nglobals].name = strdup(name);
        ASSERT(im->globals[im->nglobals].name);
        im->globals[im->nglobals++].addr = (void *)(uintptr_t)l.symaddr[si];
    }
    loader_free(&l);
    *out = im;
    return 0;
fail:
    if (base)
        plat_vm_release(base, total);
    loader_free(&l);
    return rc;
}

void *jit__elf_sym(const jit_image *im, const char *name) {
    for (uint32_t i = 0; i < im->nglobals; i++)
        if (strcmp(im->globals[i].name, name) == 0)
            return im->globals[i].addr;
    return NULL;
}

void jit__elf_code(const jit_image *im, uintptr_t *lo, uintptr_t *hi) {
    *lo = im->code_lo;
    *hi = im->code_hi;
}

void jit__elf_free(jit_image *im) {
    if (!im)
        return;
    plat_vm_release(im->base, im->size);
    for (uint32_t i = 0; i < im->nglobals; i++)
        free(im->globals[i].name);
    free(im->globals);
    free(im);
}
