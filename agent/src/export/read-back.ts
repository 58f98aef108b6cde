/**
 * The exported payload read back from export.jsonFile (what `env` and `firewall plan|apply`
 * work from), checked to be what renderJson writes: an object of strings under valid names.
 * A damaged file is a StateFileError naming it (exit 11); none is exit 12.
 */
import { AgentError, ExitCode } from '../errors';
import { readStateFile, stringRecord } from '../io/state-file';
import { NAME_PATTERN } from '../payload/validate';

function exportedPayloadProblem(value: unknown): string | null {
  const problem = stringRecord(value);
  if (problem) return problem;
  const bad = Object.keys(value as object).find((k) => !NAME_PATTERN.test(k));
  return bad === undefined ? null : `${JSON.stringify(bad.slice(0, 40))} is not a variable name (${NAME_PATTERN})`;
}

/** `file`: the host path of export.jsonFile. */
export async function readExportedPayload(file: string): Promise<Map<string, string>> {
  const vars = await readStateFile<Record<string, string>>(file, 'the exported payload', exportedPayloadProblem);
  if (!vars) throw new AgentError(`no ${file}: nothing is exported (has 'cartridge-agent once' run on this boot?)`, ExitCode.NOTHING_EXPORTED);
  return new Map(Object.entries(vars));
}
