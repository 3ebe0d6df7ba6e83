// The `submit_plan` tool: one strict schema branch per catalog action, generated from the
// catalog's params schemas, so the model can only submit catalog actions with params of the
// right shape. Keywords strict tool use does not accept (numeric and length bounds, patterns,
// defaults) are left out of what the model sees; zod checks them all on our side afterwards.
import { z } from "zod";
import { ACTION_CATALOG, ActionParamsSchemas, RiskLevelSchema } from "../../protocol/index.ts";

export const TOOL_NAME = "submit_plan";

type JsonSchema = { [key: string]: unknown };

const DROPPED = new Set([
  "$schema",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "maxItems",
  "pattern",
  "format",
  "default",
]);

/** A JSON Schema that strict tool use accepts: closed objects, none of the dropped keywords. */
export function strictSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strictSchema);
  if (typeof node !== "object" || node === null) return node;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(node)) {
    if (DROPPED.has(k)) continue;
    if (k === "minItems" && typeof v === "number" && v > 1) continue;
    out[k] = k === "properties" && typeof v === "object" && v !== null ? mapValues(v as JsonSchema) : strictSchema(v);
  }
  if (out.type === "object") out.additionalProperties = false;
  return out;
}

function mapValues(props: JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, strictSchema(v)]));
}

function paramsSchema(name: keyof typeof ActionParamsSchemas): unknown {
  const json = z.toJSONSchema(ActionParamsSchemas[name], { io: "input", unrepresentable: "any" });
  return strictSchema(json);
}

const stepBranches = ACTION_CATALOG.map((a) => ({
  type: "object",
  description: `${a.name} (${a.risk}): ${a.description}`,
  properties: {
    action: { type: "string", enum: [a.name] },
    description: { type: "string", description: "What this step does, in a few words." },
    risk: { type: "string", enum: RiskLevelSchema.options },
    params: paramsSchema(a.name),
  },
  required: ["action", "description", "risk", "params"],
  additionalProperties: false,
}));

export const PLAN_TOOL = {
  name: TOOL_NAME,
  description: "Submit the execution plan for the user's task: catalog actions only, in the order asked.",
  strict: true,
  input_schema: {
    type: "object" as const,
    properties: {
      summary: { type: "string", description: "One sentence: what the user wants." },
      steps: { type: "array", minItems: 1, items: { anyOf: stepBranches } },
      artifacts: { type: "array", items: { type: "string" } },
    },
    required: ["summary", "steps"],
    additionalProperties: false,
  },
};
