import { error, obj, type Reply, route, type Route, str } from "./http.js";
import type { SimState } from "./state.js";

/**
 * Projects v2 over GraphQL, matched on the operation's root field (organization/user projectV2,
 * node projectItems, addProjectV2ItemById, updateProjectV2ItemFieldValue); inputs come from
 * `variables` only.
 */
export function graphqlRoutes(s: SimState): Route[] {
  const { opts, projects, owner, login } = s;
  const nextId = s.nextId;

  function projectScopeError(write: boolean): unknown[] | null {
    if (!opts.scopes) return null;
    const ok = opts.scopes.includes("project") || (!write && opts.scopes.includes("read:project"));
    if (ok) return null;
    const need = write ? "['project']" : "['read:project']";
    return [
      {
        type: "INSUFFICIENT_SCOPES",
        locations: [{ line: 1, column: 1 }],
        message: `Your token has not been granted the required scopes to execute this query. The 'projectV2' field requires one of the following scopes: ${need}, but your token has only been granted the: [${opts.scopes.map((x) => `'${x}'`).join(", ")}] scopes. Please modify your token's scopes at: https://github.com/settings/tokens.`,
      },
    ];
  }

  const gqlError = (type: string | undefined, message: string, path: string[]) => ({
    ...(type ? { type } : {}),
    path,
    locations: [{ line: 2, column: 3 }],
    message,
  });

  function graphql(body: unknown): Reply {
    const { query, variables } = obj(body);
    const q = str(query);
    const v = obj(variables);
    if (!q) return error(400, "A query attribute must be specified and must be a string.");
    const reply = (payload: Record<string, unknown>) => ({ status: 200, body: payload });

    const ownerMatch = /\b(organization|user)\s*\(/.exec(q);
    if (/\bmutation\b/.test(q) && /\baddProjectV2ItemById\b/.test(q)) {
      const denied = projectScopeError(true);
      if (denied) return reply({ data: null, errors: denied });
      const input = obj(v.input);
      const projectId = str(v.projectId) ?? str(input.projectId);
      const contentId = str(v.contentId) ?? str(input.contentId);
      const project = projects.find((p) => p.id === projectId);
      const content = contentId ? s.contentByNode(contentId) : undefined;
      if (!project || !content) {
        const missing = project ? contentId : projectId;
        return reply({
          data: { addProjectV2ItemById: null },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${missing}'`, [
              "addProjectV2ItemById",
            ]),
          ],
        });
      }
      let item = project.items.find((i) => i.contentId === content.node_id);
      if (!item) {
        item = { id: `PVTI_${nextId()}`, contentId: content.node_id, optionId: null };
        project.items.push(item);
      }
      return reply({ data: { addProjectV2ItemById: { item: { id: item.id } } } });
    }
    if (/\bmutation\b/.test(q) && /\bupdateProjectV2ItemFieldValue\b/.test(q)) {
      const denied = projectScopeError(true);
      if (denied) return reply({ data: null, errors: denied });
      const input = obj(v.input);
      const projectId = str(v.projectId) ?? str(input.projectId);
      const itemId = str(v.itemId) ?? str(input.itemId);
      const fieldId = str(v.fieldId) ?? str(input.fieldId);
      const optionId = str(v.optionId) ?? str(obj(input.value).singleSelectOptionId);
      const path = ["updateProjectV2ItemFieldValue"];
      const project = projects.find((p) => p.id === projectId);
      const item = project?.items.find((i) => i.id === itemId);
      let err: ReturnType<typeof gqlError> | undefined;
      if (!project)
        err = gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${projectId}'`, path);
      else if (!item)
        err = gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${itemId}'`, path);
      else if (fieldId !== project.fieldId)
        err = gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${fieldId}'`, path);
      else if (!project.options.some((o) => o.id === optionId))
        err = gqlError(undefined, "The single select option Id does not belong to the field", path);
      if (err || !item) return reply({ data: { updateProjectV2ItemFieldValue: null }, errors: [err] });
      item.optionId = optionId ?? null;
      return reply({ data: { updateProjectV2ItemFieldValue: { projectV2Item: { id: item.id } } } });
    }
    if (/\bnode\s*\(/.test(q) && /\bprojectItems\b/.test(q)) {
      const denied = projectScopeError(false);
      if (denied) return reply({ data: null, errors: denied });
      const id = str(v.id);
      const content = id ? s.contentByNode(id) : undefined;
      if (!content)
        return reply({
          data: { node: null },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to a node with the global id of '${id}'`, ["node"]),
          ],
        });
      const nodes = projects.flatMap((p) =>
        p.items
          .filter((i) => i.contentId === content.node_id)
          .map((i) => ({ id: i.id, project: { id: p.id } })),
      );
      return reply({ data: { node: { projectItems: { nodes } } } });
    }
    if (ownerMatch && /\bprojectV2\s*\(/.test(q)) {
      const kind = ownerMatch[1] as "organization" | "user";
      const loginVar = str(v.login) ?? str(v.owner);
      const numberVar = Number(v.number);
      const orgs = new Set(projects.filter((p) => p.ownerType === "organization").map((p) => p.owner));
      if (owner !== login) orgs.add(owner);
      const users = new Set(projects.filter((p) => p.ownerType === "user").map((p) => p.owner));
      users.add(login);
      const exists = loginVar !== undefined && (kind === "organization" ? orgs : users).has(loginVar);
      if (!exists) {
        const what = kind === "organization" ? "an Organization" : "a User";
        return reply({
          data: { [kind]: null },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to ${what} with the login of '${loginVar}'.`, [kind]),
          ],
        });
      }
      const denied = projectScopeError(false);
      if (denied) return reply({ data: { [kind]: null }, errors: denied });
      const p = projects.find((x) => x.owner === loginVar && x.ownerType === kind && x.number === numberVar);
      if (!p) {
        return reply({
          data: { [kind]: { projectV2: null } },
          errors: [
            gqlError("NOT_FOUND", `Could not resolve to a ProjectV2 with the number ${numberVar}.`, [
              kind,
              "projectV2",
            ]),
          ],
        });
      }
      const fieldName = /\bfield\s*\(\s*name\s*:\s*"([^"]+)"/.exec(q)?.[1];
      const field = fieldName === "Status" ? { id: p.fieldId, name: "Status", options: p.options } : null;
      return reply({
        data: { [kind]: { projectV2: { id: p.id, title: p.title, field } } },
      });
    }
    return reply({
      errors: [
        {
          message: "The GitHub stand-in does not implement this GraphQL operation",
          extensions: { code: "undefinedField" },
          locations: [{ line: 1, column: 1 }],
        },
      ],
    });
  }

  return [route("POST", "/graphql", (_m, ctx) => graphql(ctx.body))];
}
