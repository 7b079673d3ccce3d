/* Backend `sim`: the enclave is a hardened process; the root of trust is a per-machine platform
 * secret in HOME/platform.key (directory 0700, file 0600, owner = the running user).
 * File layout (72 bytes): "PSLK" | version u32 LE = 1 | ed25519 seed (32) | sealing secret (32).
 * Invariant: the secrets live only in guarded memory (cr_secure_alloc) inside this process. */
#include "tee/tee_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "crypto/crypto.h"

typedef struct sim_state {
    uint8_t sk[CR_SIGN_SK];
    uint8_t pk[CR_SIGN_PK];
    uint8_t secret[32];
} sim_state;

#define KEYFILE_BYTES 72

static int ensure_dir(const char *dir) {
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST) {
        fprintf(stderr, "psl: cannot create %s: %s\n", dir, strerror(errno));
        return ERR_IO;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "psl: %s is not a directory\n", dir);
        return ERR_IO;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
        fprintf(stderr,
                "psl: refusing to use %s: it must be owned by uid %u with mode 0700 (it has uid %u "
                "mode %03o)\n",
                dir, (unsigned)geteuid(), (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return ERR_IO;
    }
    return 0;
}

static int create_keyfile(const char *path, uint8_t buf[KEYFILE_BYTES]) {
    memcpy(buf, "PSLK\x01\x00\x00\x00", 8);
    cr_random(buf + 8, 64);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ERR_IO;
    if (write(fd, buf, KEYFILE_BYTES) != KEYFILE_BYTES || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return ERR_IO;
    }
    close(fd);
    /* link() fails if another process created the key meanwhile: then we load theirs. */
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return e == EEXIST ? -EEXIST : ERR_IO;
    }
    unlink(tmp);
    return 0;
}

static int load_keyfile(const char *path, uint8_t buf[KEYFILE_BYTES]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = ERR_IO;
        goto out;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
        fprintf(stderr,
                "psl: refusing platform key %s: it must be owned by uid %u with mode 0600 (it has "
                "uid %u mode %03o)\n",
                path, (unsigned)geteuid(), (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        rc = ERR_IO;
        goto out;
    }
    if (st.st_size != KEYFILE_BYTES || read(fd, buf, KEYFILE_BYTES) != KEYFILE_BYTES ||
        memcmp(buf, "PSLK\x01\x00\x00\x00", 8) != 0) {
        fprintf(stderr, "psl: platform key %s is damaged\n", path);
        rc = ERR_CORRUPT;
    }
out:
    close(fd);
    return rc;
}

static int sim_open(tee_enclave *t) {
    char path[4096];
    int rc = ensure_dir(t->home);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/platform.key", t->home);
    uint8_t *buf = cr_secure_alloc(KEYFILE_BYTES);
    rc = load_keyfile(path, buf);
    if (rc == -ENOENT) {
        rc = create_keyfile(path, buf);
        if (rc == -EEXIST)
            rc = load_keyfile(path, buf);
    }
    if (rc < 0 && rc > ERR_BASE) {
        fprintf(stderr, "psl: cannot read platform key %s: %s\n", path, strerror(-rc));
        rc = ERR_IO;
    }
    if (rc) {
        cr_secure_free(buf);
        return rc;
    }
    sim_state *s = cr_secure_alloc(sizeof *s);
    cr_sign_seed_keypair(s->pk, s->sk, buf + 8);
    memcpy(s->secret, buf + 40, 32);
    cr_secure_free(buf);
    t->backend = s;
    return 0;
}

static void sim_close(tee_enclave *t) {
    cr_secure_free(t->backend);
    t->backend = NULL;
}

static int sim_sign(tee_enclave *t, tee_report *r) {
    sim_state *s = t->backend;
    uint8_t enc[TEE_REPORT_BYTES];
    memcpy(r->platform_key, s->pk, 32);
    tee_report_encode(r, enc);
    cr_sign(r->sig, enc, TEE_REPORT_SIGNED_BYTES, s->sk);
    return 0;
}

static void sim_seal_key(tee_enclave *t, const uint8_t m[TEE_MEAS_BYTES], uint8_t key[32]) {
    sim_state *s = t->backend;
    cr_kdf(key, 32, s->secret, "psl-sim-seal-v1", m, TEE_MEAS_BYTES);
}

static void sim_counter_key(tee_enclave *t, uint8_t key[32]) {
    sim_state *s = t->backend;
    cr_kdf(key, 32, s->secret, "psl-sim-counter-v1", NULL, 0);
}

static void sim_platform_key(const tee_enclave *t, uint8_t out[TEE_KEY_BYTES]) {
    const sim_state *s = t->backend;
    memcpy(out, s->pk, 32);
}

const tee_backend_ops tee__sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .sign = sim_sign,
    .seal_key = sim_seal_key,
    .platform_key = sim_platform_key,
    .counter_key = sim_counter_key,
};
