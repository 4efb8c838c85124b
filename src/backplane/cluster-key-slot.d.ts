// cluster-key-slot (ioredis' own dependency) ships no types.
declare module 'cluster-key-slot' {
  /** The Redis Cluster slot of a key (or of its hash tag), 0–16383. */
  export default function calculateSlot(key: string | Buffer): number;
}
