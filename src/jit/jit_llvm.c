/* The LLVM half of the JIT tier (with jit_gen.c): compiling a module to an ELF object, and
 * linking an object with ORC LLJIT when the ELF loader (jit_elf.c) declines it. psl loads it as
 * psljit.so only when something must be compiled; jit.c reaches it through jit_backend_llvm().
 * Invariant: LLJIT's memory manager maps segments read-write, relocates, then makes them
 * read+execute or read-only before any symbol is returned (W^X). */
#include "jit/jit_int.h"

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>

#include <stdio.h>

static int llvm_err(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
    char *m = LLVMGetErrorMessage(e);
    snprintf(err, errlen, "%s: %s", what, m);
    LLVMDisposeErrorMessage(m);
    return ERR_INVALID;
}

static int lljit_link(const uint8_t *obj, size_t len, const jit_helper *helpers, unsigned nhelpers,
                      bool osr, void **handle, jit_tables *out, char *err, size_t errlen) {
    LLVMOrcLLJITRef j = NULL;
    *handle = NULL;
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j, LLVMOrcCreateLLJITBuilder());
    if (e)
        return llvm_err(e, "creating LLJIT", err, errlen);
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j);
    LLVMOrcCSymbolMapPair pairs[32];
    ASSERT(nhelpers <= 32);
    for (unsigned i = 0; i < nhelpers; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j, helpers[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)helpers[i].addr;
        pairs[i].Sym.Flags.GenericFlags =
            LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    e = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(pairs, nhelpers));
    if (e) {
        llvm_err(e, "defining helpers", err, errlen);
        goto fail;
    }
    /* libc symbols the code generator may call (memmove, memset, libm fallbacks). */
    LLVMOrcDefinitionGeneratorRef dg;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&dg, LLVMOrcLLJITGetGlobalPrefix(j),
                                                             NULL, NULL);
    if (e) {
        llvm_err(e, "process symbols", err, errlen);
        goto fail;
    }
    LLVMOrcJITDylibAddGenerator(jd, dg);
    LLVMMemoryBufferRef mb =
        LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)obj, len, "wasm-object");
    e = LLVMOrcLLJITAddObjectFile(j, jd, mb);
    if (e) {
        llvm_err(e, "adding object", err, errlen);
        goto fail;
    }
    LLVMOrcExecutorAddress fa = 0, ea = 0, oa = 0;
    e = LLVMOrcLLJITLookup(j, &fa, JIT_SYM_FNS);
    if (!e)
        e = LLVMOrcLLJITLookup(j, &ea, JIT_SYM_ENTRIES);
    if (!e && osr)
        e = LLVMOrcLLJITLookup(j, &oa, JIT_SYM_OSR);
    if (e) {
        llvm_err(e, "linking object", err, errlen);
        goto fail;
    }
    out->fns = (void *const *)(uintptr_t)fa;
    out->entries = (void *const *)(uintptr_t)ea;
    out->osrs = (void *const *)(uintptr_t)oa;
    *handle = j;
    return 0;
fail:
    LLVMOrcDisposeLLJIT(j);
    return ERR_INVALID;
}

static void lljit_unlink(void *handle) {
    if (handle)
        LLVMOrcDisposeLLJIT(handle);
}

static const jit_backend g_llvm = {
    .compile = jit__compile_object,
    .link = lljit_link,
    .unlink = lljit_unlink,
};

const jit_backend *jit_backend_llvm(void) {
    jit__llvm_init();
    return &g_llvm;
}
