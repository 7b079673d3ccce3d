/* Private to src/wasm: the interpreter's internal instruction set (X-macro list).
 * Operand conventions (cell 1 = four 16-bit frame slots a,b,c,d or {lo,hi} 32-bit words):
 *   UN(op):   a = dst, b = src                                   2 cells
 *   BIN(op):  a = dst, b = lhs, c = rhs                          2 cells; op_ri: rhs = cell 2    3 cells
 *   loads:    a = dst, b = addr, hi = offset                     2 cells
 *   stores:   a = addr, b = value, hi = offset                   2 cells
 * The lowering pass (lower.c) is the only producer; interp.c the only consumer. */
#ifndef PSL_WASM_WASM_OPS_H
#define PSL_WASM_WASM_OPS_H

/* clang-format off */
#define WASM_BINOPS(B) \
    B(i32_add) B(i32_sub) B(i32_mul) B(i32_div_s) B(i32_div_u) B(i32_rem_s) B(i32_rem_u) \
    B(i32_and) B(i32_or) B(i32_xor) B(i32_shl) B(i32_shr_s) B(i32_shr_u) B(i32_rotl) B(i32_rotr) \
    B(i32_eq) B(i32_ne) B(i32_lt_s) B(i32_lt_u) B(i32_gt_s) B(i32_gt_u) B(i32_le_s) B(i32_le_u) \
    B(i32_ge_s) B(i32_ge_u) \
    B(i64_add) B(i64_sub) B(i64_mul) B(i64_div_s) B(i64_div_u) B(i64_rem_s) B(i64_rem_u) \
    B(i64_and) B(i64_or) B(i64_xor) B(i64_shl) B(i64_shr_s) B(i64_shr_u) B(i64_rotl) B(i64_rotr) \
    B(i64_eq) B(i64_ne) B(i64_lt_s) B(i64_lt_u) B(i64_gt_s) B(i64_gt_u) B(i64_le_s) B(i64_le_u) \
    B(i64_ge_s) B(i64_ge_u) \
    B(f32_eq) B(f32_ne) B(f32_lt) B(f32_gt) B(f32_le) B(f32_ge) \
    B(f64_eq) B(f64_ne) B(f64_lt) B(f64_gt) B(f64_le) B(f64_ge) \
    B(f32_add) B(f32_sub) B(f32_mul) B(f32_div) B(f32_min) B(f32_max) B(f32_copysign) \
    B(f64_add) B(f64_sub) B(f64_mul) B(f64_div) B(f64_min) B(f64_max) B(f64_copysign)

/* Compare-and-branch superinstructions: [h][_, lhs, rhs][target] or [h][_, lhs][imm][target].
 * Taken branches count fuel, as they may close a loop. Same order as the i32 compares above. */
#define WASM_BRCMPOPS(B) \
    B(brif_i32_eq) B(brif_i32_ne) B(brif_i32_lt_s) B(brif_i32_lt_u) B(brif_i32_gt_s) \
    B(brif_i32_gt_u) B(brif_i32_le_s) B(brif_i32_le_u) B(brif_i32_ge_s) B(brif_i32_ge_u)

#define WASM_UNOPS(U) \
    U(i32_eqz) U(i64_eqz) U(i32_clz) U(i32_ctz) U(i32_popcnt) U(i64_clz) U(i64_ctz) U(i64_popcnt) \
    U(f32_abs) U(f32_neg) U(f32_ceil) U(f32_floor) U(f32_trunc) U(f32_nearest) U(f32_sqrt) \
    U(f64_abs) U(f64_neg) U(f64_ceil) U(f64_floor) U(f64_trunc) U(f64_nearest) U(f64_sqrt) \
    U(i32_wrap_i64) U(i32_trunc_f32_s) U(i32_trunc_f32_u) U(i32_trunc_f64_s) U(i32_trunc_f64_u) \
    U(i64_extend_i32_s) U(i64_trunc_f32_s) U(i64_trunc_f32_u) \
    U(i64_trunc_f64_s) U(i64_trunc_f64_u) U(f32_convert_i32_s) U(f32_convert_i32_u) \
    U(f32_convert_i64_s) U(f32_convert_i64_u) U(f32_demote_f64) U(f64_convert_i32_s) \
    U(f64_convert_i32_u) U(f64_convert_i64_s) U(f64_convert_i64_u) U(f64_promote_f32) \
    U(i32_extend8_s) U(i32_extend16_s) U(i64_extend8_s) U(i64_extend16_s) U(i64_extend32_s) \
    U(i32_trunc_sat_f32_s) U(i32_trunc_sat_f32_u) U(i32_trunc_sat_f64_s) U(i32_trunc_sat_f64_u) \
    U(i64_trunc_sat_f32_s) U(i64_trunc_sat_f32_u) U(i64_trunc_sat_f64_s) U(i64_trunc_sat_f64_u) \
    U(ref_is_null)

#define WASM_LOADOPS(L) \
    L(load32) L(load64) L(load8_s32) L(load8_u) L(load16_s32) L(load16_u) L(load8_s64) \
    L(load16_s64) L(load32_s64)

#define WASM_STOREOPS(S) S(store8) S(store16) S(store32) S(store64)

#define WASM_MISCOPS(X) \
    X(unreachable) X(copy) X(const) X(select) X(br) X(br_back) X(br_if) X(br_if_back) \
    X(br_unless) X(br_table) X(ret) X(call) X(call_import) X(call_indirect) X(ref_func) \
    X(global_get) X(global_set) X(memory_size) X(memory_grow) X(memory_fill) X(memory_copy) \
    X(memory_init) X(data_drop) X(table_get) X(table_set) X(table_size) X(table_grow) \
    X(table_fill) X(table_copy) X(table_init) X(elem_drop) X(copy2) X(nop) X(brif_eqz)
/* clang-format on */

#define WASM_OP_BIN(n) OP_##n, OP_##n##_ri,
#define WASM_OP_ONE(n) OP_##n,
typedef enum wasm_op {
    WASM_BINOPS(WASM_OP_BIN) WASM_BRCMPOPS(WASM_OP_BIN) WASM_UNOPS(WASM_OP_ONE) WASM_LOADOPS(WASM_OP_ONE)
        WASM_STOREOPS(WASM_OP_ONE) WASM_MISCOPS(WASM_OP_ONE) OP__COUNT
} wasm_op;
#undef WASM_OP_BIN
#undef WASM_OP_ONE

#endif
