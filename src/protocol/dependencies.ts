/** Task dependency graph: cycles are refused at write time, naming the cycle. */

export type DependencyGraph = Record<string, readonly string[]>;

/** The first cycle found, as a closed path (`["GH-1", "GH-2", "GH-1"]`), or null. */
export function findCycle(graph: DependencyGraph): string[] | null {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    const s = state.get(node);
    if (s === "done") return null;
    if (s === "visiting") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "visiting");
    stack.push(node);
    // Own keys only: a dependency named "constructor" is an unknown task, not Object's constructor.
    for (const dep of Object.hasOwn(graph, node) ? (graph[node] ?? []) : []) {
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of Object.keys(graph).sort()) {
    const found = visit(node);
    if (found) return found;
  }
  return null;
}

/** Dependencies of a task that are not done yet (unknown ids count as unmet). */
export function unmetDependencies(
  dependsOn: readonly string[],
  statusOf: (taskId: string) => string | undefined,
): string[] {
  return dependsOn.filter((d) => statusOf(d) !== "done");
}

/** Parses `Blocked by #12`, `Depends on #12, #13`, `depends on GH-12` from an issue body. */
export function dependenciesFromIssueBody(body: string): string[] {
  const out = new Set<string>();
  const re = /(?:blocked by|depends on|after)\s*:?\s*((?:(?:#|GH-)\d+[\s,and&]*)+)/gi;
  for (const m of body.matchAll(re)) {
    for (const n of m[1]!.matchAll(/(?:#|GH-)(\d+)/gi)) out.add(`GH-${n[1]}`);
  }
  return [...out];
}

/** Unchecked and checked task-list items (`- [ ] ...`) of an issue body: the completion criteria. */
export function checklistFromIssueBody(body: string): string[] {
  return [...body.matchAll(/^\s*[-*]\s+\[[ xX]\]\s+(.+?)\s*$/gm)].map((m) => m[1]!);
}
