// A small key-value service written in AssemblyScript against sdk/assemblyscript/psl.ts.
// Requests (one line):
//   "set KEY VALUE"   store VALUE (the rest of the line) under "as/KEY"; prints "ok"
//   "get KEY"         prints the value, or "none" with exit status 1 when KEY is absent
//   "del KEY"         deletes it; prints "deleted"
//   "incr KEY [N]"    adds N (default 1) to the integer under KEY while holding the lock
//                     "as/KEY"; prints the new value
//   "call FN INPUT"   invokes function FN with INPUT and prints its response
//   "share KEY VALUE" stores VALUE like set, then publishes it at once (psl.publish: the other
//                     workers get it before the invocation ends); prints "shared"
import * as psl from "../../sdk/assemblyscript/psl";

function fail(what: string, err: i32): void {
  psl.error(what + ": " + psl.errorName(err));
  psl.exit(2);
}

function main(): void {
  let req = psl.request();
  while (req.endsWith("\n") || req.endsWith("\r")) req = req.substring(0, req.length - 1);
  const sp = req.indexOf(" ");
  const cmd = sp < 0 ? req : req.substring(0, sp);
  const rest = sp < 0 ? "" : req.substring(sp + 1);
  const sp2 = rest.indexOf(" ");
  const key = sp2 < 0 ? rest : rest.substring(0, sp2);
  const arg = sp2 < 0 ? "" : rest.substring(sp2 + 1);
  if (key.length == 0) {
    psl.error("usage: set KEY VALUE | get KEY | del KEY | incr KEY [N] | call FN INPUT | " +
              "share KEY VALUE");
    psl.exit(64);
    return;
  }
  if (cmd == "set") {
    const rc = psl.put("as/" + key, arg);
    if (rc != psl.OK) return fail("put", rc);
    psl.respond("ok\n");
  } else if (cmd == "get") {
    const v = psl.get("as/" + key);
    if (v === null) {
      if (psl.lastError() != psl.ENOTFOUND) return fail("get", psl.lastError());
      psl.respond("none\n");
      psl.exit(1);
      return;
    }
    psl.respond(v + "\n");
  } else if (cmd == "del") {
    const rc = psl.del("as/" + key);
    if (rc != psl.OK) return fail("delete", rc);
    psl.respond("deleted\n");
  } else if (cmd == "incr") {
    const by = arg.length ? I64.parseInt(arg) : 1;
    const rc = psl.lock("as/" + key);
    if (rc != psl.OK) return fail("lock", rc);
    const cur = psl.get("as/" + key);
    const next = (cur === null ? 0 : I64.parseInt(cur)) + by;
    const prc = psl.put("as/" + key, next.toString());
    psl.unlock("as/" + key);
    if (prc != psl.OK) return fail("put", prc);
    psl.respond(next.toString() + "\n");
  } else if (cmd == "share") {
    const rc = psl.put("as/" + key, arg);
    if (rc != psl.OK) return fail("put", rc);
    const prc = psl.publish();
    if (prc != psl.OK) return fail("publish", prc);
    psl.respond("shared\n");
  } else if (cmd == "call") {
    const r = psl.invoke(key, arg);
    if (r === null) return fail("invoke " + key, psl.lastError());
    psl.respond(r);
  } else {
    psl.error("unknown command " + cmd);
    psl.exit(64);
  }
}

main();
