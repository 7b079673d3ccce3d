/* A to-do list kept in the key-value store, written in C++ against sdk/cpp/psl.hpp. Requests:
 *   "add TEXT"   append an item; prints "added N"
 *   "done N"     remove item N; prints "done N" (or "no item N", exit status 1)
 *   "list"       prints "N TEXT" per open item, in order, then "K open"
 *   "words"      counts the words of all open items: "WORD COUNT" lines, most frequent first
 * Items live under "todo/item/N"; "todo/next" is the next id and "todo/index" the space-separated
 * list of open ids. Every request that changes more than one key holds the lock "todo". */
#include <psl.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string item_key(long id) {
    return "todo/item/" + std::to_string(id);
}

std::vector<long> read_index() {
    std::vector<long> ids;
    std::string idx = psl::get("todo/index").value_or("");
    const char *p = idx.c_str();
    char *end;
    for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
        ids.push_back(v);
        p = end;
    }
    return ids;
}

int write_index(const std::vector<long> &ids) {
    std::string s;
    for (long id : ids)
        s += (s.empty() ? "" : " ") + std::to_string(id);
    return psl::put("todo/index", s);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
        s.remove_suffix(1);
    while (!s.empty() && s.front() == ' ')
        s.remove_prefix(1);
    return s;
}

int fail(const char *what, int err) {
    std::fprintf(stderr, "%s: %s\n", what, psl::strerror(err));
    return 2;
}

int add(std::string_view text) {
    psl::lock_guard g("todo");
    if (!g)
        return fail("lock", g.status());
    long id = std::strtol(psl::get("todo/next").value_or("1").c_str(), nullptr, 10);
    std::vector<long> ids = read_index();
    ids.push_back(id);
    int rc = psl::put(item_key(id), text);
    if (!rc)
        rc = psl::put("todo/next", std::to_string(id + 1));
    if (!rc)
        rc = write_index(ids);
    if (rc)
        return fail("put", rc);
    psl::respond("added " + std::to_string(id) + "\n");
    return 0;
}

int done(long id) {
    psl::lock_guard g("todo");
    if (!g)
        return fail("lock", g.status());
    std::vector<long> ids = read_index();
    auto it = std::find(ids.begin(), ids.end(), id);
    if (it == ids.end()) {
        psl::respond("no item " + std::to_string(id) + "\n");
        return 1;
    }
    ids.erase(it);
    int rc = psl::erase(item_key(id));
    if (!rc)
        rc = write_index(ids);
    if (rc)
        return fail("delete", rc);
    psl::respond("done " + std::to_string(id) + "\n");
    return 0;
}

int list() {
    std::vector<long> ids = read_index();
    size_t open = 0;
    for (long id : ids) {
        if (auto text = psl::get(item_key(id))) {
            psl::respond(std::to_string(id) + " " + *text + "\n");
            open++;
        }
    }
    psl::respond(std::to_string(open) + " open\n");
    return 0;
}

int words() {
    std::map<std::string, int> count;
    for (long id : read_index()) {
        std::string text = psl::get(item_key(id)).value_or("");
        size_t i = 0;
        while (i < text.size()) {
            size_t j = text.find(' ', i);
            if (j == std::string::npos)
                j = text.size();
            if (j > i)
                count[text.substr(i, j - i)]++;
            i = j + 1;
        }
    }
    std::vector<std::pair<std::string, int>> v(count.begin(), count.end());
    std::stable_sort(v.begin(), v.end(),
                     [](const auto &a, const auto &b) { return a.second > b.second; });
    for (const auto &[w, n] : v)
        psl::respond(w + " " + std::to_string(n) + "\n");
    return 0;
}

} // namespace

int main() {
    std::string req = psl::request();
    std::string_view r = trim(req);
    if (r.substr(0, 4) == "add " && !trim(r.substr(4)).empty())
        return add(trim(r.substr(4)));
    if (r.substr(0, 5) == "done ")
        return done(std::strtol(std::string(r.substr(5)).c_str(), nullptr, 10));
    if (r == "list")
        return list();
    if (r == "words")
        return words();
    std::fprintf(stderr, "usage: add TEXT | done N | list | words\n");
    return 64;
}
