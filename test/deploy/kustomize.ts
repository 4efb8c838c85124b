// Reads deploy/k8s/ the way `kubectl apply -k` would, as far as these manifests use kustomize:
// the listed resources (every YAML document in them) and the generated ConfigMap's env file.
// No kubectl or kustomize binary runs here; the tests check the parsed objects.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../helpers/replica.js';

export const K8S_DIR = join(REPO_ROOT, 'deploy/k8s');

/** A Kubernetes object, loosely typed: the tests read fields by path and assert their shape. */
export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
} & Record<string, any>;

export interface Kustomization {
  /** The kustomization file itself, parsed. */
  spec: Record<string, any>;
  /** Every object in the listed resources, in order. */
  manifests: Manifest[];
  /** The files `resources:` lists. */
  resourceFiles: string[];
  /** configMapGenerator name → its `NAME=value` pairs, from the `envs:` files. */
  generatedConfigMaps: Map<string, Record<string, string>>;
}

/** Parses YAML strictly: any error or warning (a duplicate key, a bad indent) throws. */
export function parseYamlDocuments(text: string, file: string): unknown[] {
  return parseAllDocuments(text).map((document) => {
    const problems = [...document.errors, ...document.warnings];
    if (problems.length > 0) throw new Error(`${file}: ${problems.map((problem) => problem.message).join('; ')}`);
    return document.toJS();
  });
}

/** `NAME=value` lines, as kustomize's `envs:` reads them: blank lines and `#` comments skipped. */
export function readEnvFile(path: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const at = trimmed.indexOf('=');
    if (at <= 0) throw new Error(`${path}: not NAME=value: ${trimmed}`);
    pairs[trimmed.slice(0, at)] = trimmed.slice(at + 1);
  }
  return pairs;
}

export function loadKustomization(dir: string = K8S_DIR): Kustomization {
  const spec = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Record<string, any>;
  const resourceFiles = (spec.resources ?? []) as string[];
  const manifests = resourceFiles.flatMap((file) => parseYamlDocuments(readFileSync(join(dir, file), 'utf8'), file) as Manifest[]);
  const generatedConfigMaps = new Map<string, Record<string, string>>();
  for (const generator of (spec.configMapGenerator ?? []) as { name: string; envs?: string[] }[]) {
    generatedConfigMaps.set(generator.name, Object.assign({}, ...(generator.envs ?? []).map((file) => readEnvFile(join(dir, file)))));
  }
  return { spec, manifests, resourceFiles, generatedConfigMaps };
}

/** The one object of this kind; throws when there is none or several. */
export function only(manifests: readonly Manifest[], kind: string): Manifest {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Manifest;
}
