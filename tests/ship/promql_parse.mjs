// Reads a JSON array of PromQL expressions on stdin; prints a JSON array with, for each, null when
// the expression parses, else the text around the first syntax error. Prometheus's own grammar.
import { parser } from "@prometheus-io/lezer-promql";

const input = await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
});

const results = JSON.parse(input).map((expr) => {
  let error = null;
  parser.parse(expr).iterate({
    enter(node) {
      if (error === null && node.type.isError) {
        error = `at ${node.from}: ...${expr.slice(Math.max(0, node.from - 30), node.from + 30)}...`;
      }
    },
  });
  return error;
});
process.stdout.write(JSON.stringify(results));
