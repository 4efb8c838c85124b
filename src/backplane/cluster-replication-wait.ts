import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import type { PublishRequest } from './backplane.js';
import type { HistoryOptions } from './memory-backplane.js';
import { channelKeys } from './redis-keys.js';
import { ReplicationWait } from './replication-wait.js';
import { runPublish } from './script-calls.js';

/** A publish whose slot moved (MOVED: the script did not run) is sent once more, to the node Redis named. */
const MAX_REDIRECTIONS = 1;

interface MasterConnection {
  node: Redis;
  replication: ReplicationWait;
}

/**
 * REDIS_WAIT_REPLICAS on a Cluster: group commit per master. A `WAIT` counts the writes of the
 * connection it is sent on, on that one node, so the publish script is not left to the Cluster's
 * routing: it runs on the connection ioredis keeps to the slot's master, and that same connection's
 * ReplicationWait sends one `WAIT` for every write answered on it since its last one. A `WAIT` on
 * any other connection would count none of these writes and acknowledge at once.
 *
 * The slot map is the Cluster's own (refreshed every second and on MOVED). A MOVED reply means the
 * script ran nowhere: it is sent once to the node named; an ASK (a slot being migrated) or any
 * other error fails the publish (a 503, retried by the sender with its idempotency key).
 */
export class ClusterReplicationWait {
  private readonly masters = new WeakMap<Redis, MasterConnection>();

  constructor(
    private readonly cluster: Cluster,
    private readonly replicas: number,
  ) {}

  /** Runs the publish script on its slot's master and waits for the replicas; rejects if they did not acknowledge in time. */
  async publish(request: PublishRequest, history: HistoryOptions): Promise<{ position: string; epoch: string; receivers: number }> {
    let node = this.masterOf(channelKeys(request.channel).history);
    for (let redirections = 0; ; redirections++) {
      const master = this.connection(node);
      try {
        const result = await runPublish(master.node, true, request, history);
        // A duplicate (receivers -1) wrote nothing here to wait for: its first publish was answered
        // already; a live-only event is not kept.
        if (result.receivers >= 0 && request.durable !== false && !(await master.replication.acknowledged())) {
          throw new Error(`fewer than ${this.replicas} Redis replicas of ${addressOf(node)} acknowledged the write in time`);
        }
        return result;
      } catch (err) {
        const moved = /^MOVED \d+ (\S+)/.exec((err as Error).message);
        if (moved === null || redirections >= MAX_REDIRECTIONS) throw err;
        this.cluster.refreshSlotsCache();
        node = this.nodeAt(moved[1] as string);
      }
    }
  }

  /** The Cluster's connection to the master of `key`'s slot, as its slot map says now. */
  private masterOf(key: string): Redis {
    const address = this.cluster.slots[calculateSlot(key)]?.[0];
    if (address === undefined) throw new Error(`no Redis master is known for the slot of ${key}`);
    return this.nodeAt(address);
  }

  private nodeAt(address: string): Redis {
    const node = this.cluster.nodes('all').find((candidate) => addressOf(candidate) === address);
    if (node === undefined) throw new Error(`the Redis Cluster has no connection to ${address}`);
    return node;
  }

  private connection(node: Redis): MasterConnection {
    let master = this.masters.get(node);
    if (master === undefined) {
      master = { node, replication: new ReplicationWait(node, this.replicas) };
      this.masters.set(node, master);
    }
    return master;
  }
}

const addressOf = (node: Redis): string => `${node.options.host}:${node.options.port}`;
