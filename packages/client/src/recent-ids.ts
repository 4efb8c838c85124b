/**
 * The ids of the last `capacity` events delivered, to drop a duplicate: after a tab takes over
 * the stream, or a stream resumes, an event can arrive twice (from the old leader's broadcast
 * and from the new stream). Ids are opaque, so membership is all that can be asked.
 */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  /** True when `id` is new (and now remembered), false when it was seen. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    // A Set iterates in insertion order: the first entry is the oldest.
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }
}
