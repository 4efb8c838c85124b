// The benchmark scripts' command-line flags: `--name=value` or `--name` (true). Split at the first
// '=' only: a value may hold more (--compare-node-args="--max-semi-space-size=32").
export function parseFlags(argv = process.argv.slice(2)) {
  return Object.fromEntries(
    argv.map((arg) => {
      const flag = arg.replace(/^--/, '');
      const at = flag.indexOf('=');
      return at < 0 ? [flag, true] : [flag.slice(0, at), flag.slice(at + 1)];
    }),
  );
}
