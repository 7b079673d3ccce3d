/* Benchmark kernel: a small expression language. Generates COUNT random arithmetic expressions
 * as text (integers, variables a-z, + - * / % & | ^ << >>, unary minus, parentheses), parses
 * each with a recursive-descent parser into a tree, evaluates it for several variable bindings
 * (32-bit wrap-around arithmetic; x/0 and x%0 give 0) and prints a checksum.
 * Usage: expr [COUNT] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_NUM, N_VAR, N_NEG, N_BIN };

typedef struct {
    uint8_t kind, op;
    int32_t a, b; /* children (node indexes) or the number / variable index */
    uint32_t val;
} node;

typedef struct {
    const char *s;
    size_t pos;
    node *nodes;
    int32_t count, cap;
    int err;
} parser;

static uint32_t rng = 0x2545f491u;

static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* ---- generator ---- */

static const char *ops[] = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"};

static void gen(char *out, size_t *o, size_t cap, int depth) {
    uint32_t r = next() % 16;
    if (depth <= 0 || r < 4) {
        if (r & 1)
            *o += (size_t)snprintf(out + *o, cap - *o, "%u", next() % 100000);
        else
            *o += (size_t)snprintf(out + *o, cap - *o, "%c", 'a' + (char)(next() % 26));
        return;
    }
    if (r == 4) {
        *o += (size_t)snprintf(out + *o, cap - *o, "-");
        gen(out, o, cap, depth - 1);
        return;
    }
    int paren = r & 1;
    if (paren)
        *o += (size_t)snprintf(out + *o, cap - *o, "(");
    gen(out, o, cap, depth - 1);
    *o += (size_t)snprintf(out + *o, cap - *o, " %s ", ops[next() % 10]);
    gen(out, o, cap, depth - 1);
    if (paren)
        *o += (size_t)snprintf(out + *o, cap - *o, ")");
}

/* ---- parser: precedence climbing over C-like levels ---- */

static void skip_ws(parser *p) {
    while (p->s[p->pos] == ' ')
        p->pos++;
}

static int32_t add_node(parser *p, uint8_t kind, uint8_t op, int32_t a, int32_t b, uint32_t v) {
    if (p->count == p->cap) {
        p->err = 1;
        return 0;
    }
    node *n = &p->nodes[p->count];
    n->kind = kind;
    n->op = op;
    n->a = a;
    n->b = b;
    n->val = v;
    return p->count++;
}

static int32_t parse_bin(parser *p, int level);

static int32_t parse_unary(parser *p) {
    skip_ws(p);
    char c = p->s[p->pos];
    if (c == '-') {
        p->pos++;
        int32_t a = parse_unary(p);
        return add_node(p, N_NEG, 0, a, 0, 0);
    }
    if (c == '(') {
        p->pos++;
        int32_t a = parse_bin(p, 0);
        skip_ws(p);
        if (p->s[p->pos] != ')') {
            p->err = 1;
            return 0;
        }
        p->pos++;
        return a;
    }
    if (c >= '0' && c <= '9') {
        uint32_t v = 0;
        while (p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            v = v * 10u + (uint32_t)(p->s[p->pos++] - '0');
        return add_node(p, N_NUM, 0, 0, 0, v);
    }
    if (c >= 'a' && c <= 'z') {
        p->pos++;
        return add_node(p, N_VAR, 0, c - 'a', 0, 0);
    }
    p->err = 1;
    return 0;
}

/* Levels, loosest first: | ^ & (<< >>) (+ -) (* / %) */
static int op_at(parser *p, int level, int *len) {
    const char *s = p->s + p->pos;
    *len = 1;
    switch (level) {
    case 0: return s[0] == '|' ? '|' : 0;
    case 1: return s[0] == '^' ? '^' : 0;
    case 2: return s[0] == '&' ? '&' : 0;
    case 3:
        *len = 2;
        if (s[0] == '<' && s[1] == '<')
            return 'l';
        if (s[0] == '>' && s[1] == '>')
            return 'r';
        return 0;
    case 4: return (s[0] == '+' || s[0] == '-') ? s[0] : 0;
    case 5: return (s[0] == '*' || s[0] == '/' || s[0] == '%') ? s[0] : 0;
    default: return 0;
    }
}

static int32_t parse_bin(parser *p, int level) {
    if (level == 6)
        return parse_unary(p);
    int32_t left = parse_bin(p, level + 1);
    for (;;) {
        skip_ws(p);
        int len;
        int op = op_at(p, level, &len);
        if (!op || p->err)
            return left;
        p->pos += (size_t)len;
        int32_t right = parse_bin(p, level + 1);
        left = add_node(p, N_BIN, (uint8_t)op, left, right, 0);
    }
}

static uint32_t eval(const node *nodes, int32_t i, const uint32_t *vars) {
    const node *n = &nodes[i];
    switch (n->kind) {
    case N_NUM: return n->val;
    case N_VAR: return vars[n->a];
    case N_NEG: return 0u - eval(nodes, n->a, vars);
    default: break;
    }
    uint32_t x = eval(nodes, n->a, vars), y = eval(nodes, n->b, vars);
    switch (n->op) {
    case '+': return x + y;
    case '-': return x - y;
    case '*': return x * y;
    case '/': return y ? x / y : 0;
    case '%': return y ? x % y : 0;
    case '&': return x & y;
    case '|': return x | y;
    case '^': return x ^ y;
    case 'l': return x << (y & 31);
    default: return x >> (y & 31);
    }
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 60000;
    size_t cap = 1 << 16;
    char *text = malloc(cap);
    node *nodes = malloc(sizeof(node) * 8192);
    if (!text || !nodes)
        return 1;
    uint32_t vars[26], check = 0;
    long total_nodes = 0;
    for (long e = 0; e < count; e++) {
        size_t o = 0;
        gen(text, &o, cap, 9);
        parser p = {text, 0, nodes, 0, 8192, 0};
        int32_t root = parse_bin(&p, 0);
        skip_ws(&p);
        if (p.err || p.s[p.pos] != 0) {
            printf("expr: parse error in expression %ld at %zu\n", e, p.pos);
            return 1;
        }
        total_nodes += p.count;
        for (int b = 0; b < 8; b++) {
            for (int v = 0; v < 26; v++)
                vars[v] = next();
            check = check * 31u + eval(nodes, root, vars);
        }
    }
    printf("expr count=%ld: %ld nodes, checksum %08x\n", count, total_nodes, check);
    free(text);
    free(nodes);
    return 0;
}
