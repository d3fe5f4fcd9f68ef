// Offline checks of a Terraform configuration, for CI machines without a terraform binary or a
// provider registry:
// - syntax: every .tf and .tfvars file parses (@cdktf/hcl2json, HashiCorp's HCL parser built to
//   WebAssembly);
// - formatting: see hcl-format.ts; quoted type constraints are caught here;
// - schema: every aws_* resource and data source type exists in the AWS provider, every argument
//   and nested block is one it declares, blocks are written as blocks and attributes as
//   attributes, a single block appears once, and required arguments are present;
// - wiring: module calls pass only variables the module declares and every variable it requires;
//   var., local., module., data. and resource references name things that exist; every declared
//   variable is used.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse } from '@cdktf/hcl2json';
import {
  awsProviderSchema,
  awsSchemaOf,
  awsTypeNames,
  type BlockSchema,
  type SchemaKind,
} from './aws-schema.ts';
import { hint } from './suggest.ts';

type Body = Record<string, unknown>;

interface Declared<T = Body> {
  readonly file: string;
  readonly name: string;
  readonly body: T;
}

interface TypedDeclared extends Declared {
  readonly type: string;
}

export interface TerraformModule {
  readonly dir: string;
  readonly files: ReadonlyMap<string, string>;
  readonly resources: TypedDeclared[];
  readonly data: TypedDeclared[];
  readonly variables: Declared[];
  readonly outputs: Declared[];
  readonly locals: Declared<unknown>[];
  readonly modules: Declared[];
  readonly providers: Declared[];
}

const RESOURCE_META = new Set([
  'count',
  'for_each',
  'depends_on',
  'provider',
  'lifecycle',
  'provisioner',
  'connection',
]);
const DATA_META = new Set(['count', 'for_each', 'depends_on', 'provider', 'lifecycle']);
const MODULE_META = new Set(['source', 'version', 'count', 'for_each', 'providers', 'depends_on']);

const isBody = (value: unknown): value is Body =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** hcl2json gives each labelled block as { label: [body, …] }. */
function labelled(value: unknown): [string, Body][] {
  if (!isBody(value)) return [];
  return Object.entries(value).flatMap(([label, bodies]) =>
    (Array.isArray(bodies) ? bodies : [bodies]).filter(isBody).map((body) => [label, body]),
  ) as [string, Body][];
}

/** Parses every .tf file of a directory (not its subdirectories). Throws on a syntax error. */
export async function loadModule(dir: string): Promise<TerraformModule> {
  const module: TerraformModule = {
    dir,
    files: new Map(),
    resources: [],
    data: [],
    variables: [],
    outputs: [],
    locals: [],
    modules: [],
    providers: [],
  };
  const names = readdirSync(dir).filter((name) => name.endsWith('.tf'));
  for (const name of names.sort()) {
    const file = join(dir, name);
    const text = readFileSync(file, 'utf8');
    (module.files as Map<string, string>).set(file, text);
    const json = (await parse(file, text)) as Body;
    for (const [type, blocks] of Object.entries((json.resource as Body | undefined) ?? {})) {
      for (const [label, body] of labelled(blocks)) {
        module.resources.push({ file, type, name: label, body });
      }
    }
    for (const [type, blocks] of Object.entries((json.data as Body | undefined) ?? {})) {
      for (const [label, body] of labelled(blocks))
        module.data.push({ file, type, name: label, body });
    }
    for (const [label, body] of labelled(json.variable))
      module.variables.push({ file, name: label, body });
    for (const [label, body] of labelled(json.output))
      module.outputs.push({ file, name: label, body });
    for (const [label, body] of labelled(json.module))
      module.modules.push({ file, name: label, body });
    for (const [label, body] of labelled(json.provider))
      module.providers.push({ file, name: label, body });
    for (const locals of (json.locals as Body[] | undefined) ?? []) {
      for (const [label, value] of Object.entries(locals)) {
        module.locals.push({ file, name: label, body: value });
      }
    }
  }
  return module;
}

/** Checks one block body against its schema; `where` names it in messages. */
function checkBody(
  body: Body,
  schema: BlockSchema,
  where: string,
  meta: ReadonlySet<string>,
  problems: string[],
): void {
  const dynamicBlocks = new Set<string>();
  for (const [label, dynamicBody] of labelled(body.dynamic)) {
    dynamicBlocks.add(label);
    const argument = schema.arguments.get(label);
    if (!argument?.block) {
      problems.push(
        `${where}: dynamic "${label}" is not a block of this type${hint(label, schema.arguments.keys())}`,
      );
      continue;
    }
    for (const content of (dynamicBody.content as Body[] | undefined) ?? []) {
      checkBody(content, argument.block.schema, `${where}.${label}`, new Set(), problems);
    }
  }

  for (const [key, value] of Object.entries(body)) {
    if (key === 'dynamic' || meta.has(key)) continue;
    const argument = schema.arguments.get(key);
    if (!argument) {
      problems.push(`${where}: unknown argument "${key}"${hint(key, schema.arguments.keys())}`);
      continue;
    }
    if (!argument.block) {
      continue;
    }
    const isBlockSyntax = Array.isArray(value) && value.every(isBody);
    if (!isBlockSyntax) {
      problems.push(`${where}: "${key}" is a block; write it as ${key} { … }, not ${key} = …`);
      continue;
    }
    if (!argument.block.repeatable && value.length > 1) {
      problems.push(`${where}: block "${key}" may appear only once, found ${value.length}`);
    }
    for (const nested of value) {
      checkBody(nested as Body, argument.block.schema, `${where}.${key}`, new Set(), problems);
    }
  }

  for (const [key, argument] of schema.arguments) {
    if (argument.required && !(key in body) && !dynamicBlocks.has(key)) {
      problems.push(`${where}: missing required argument "${key}"`);
    }
  }
}

function checkTyped(
  kind: SchemaKind,
  declared: TypedDeclared,
  problems: string[],
  base: string,
): void {
  const prefix = kind === 'data' ? 'data.' : '';
  const where = `${relative(base, declared.file)}: ${prefix}${declared.type}.${declared.name}`;
  if (!declared.type.startsWith('aws_')) {
    problems.push(`${where}: only aws_* types can be checked offline; ${declared.type} is not one`);
    return;
  }
  const schema = awsSchemaOf(kind, declared.type);
  if (!schema) {
    const what = kind === 'data' ? 'data source' : 'resource type';
    problems.push(
      `${where}: the AWS provider has no ${what} ${declared.type}${hint(declared.type, awsTypeNames(kind))}`,
    );
    return;
  }
  checkBody(declared.body, schema, where, kind === 'data' ? DATA_META : RESOURCE_META, problems);
}

/** Every string inside a parsed value (expressions come out of hcl2json as "${…}" strings). */
function stringsIn(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringsIn);
  if (isBody(value)) return Object.values(value).flatMap(stringsIn);
  return [];
}

interface Reference {
  readonly kind: 'var' | 'local' | 'module' | 'data' | 'resource';
  readonly name: string;
  readonly attribute?: string;
  readonly text: string;
}

function referencesIn(expression: string): Reference[] {
  const references: Reference[] = [];
  for (const [text, name = ''] of expression.matchAll(/(?<![\w.])var\.(\w+)/g)) {
    references.push({ kind: 'var', name, text });
  }
  for (const [text, name = ''] of expression.matchAll(/(?<![\w.])local\.(\w+)/g)) {
    references.push({ kind: 'local', name, text });
  }
  for (const match of expression.matchAll(/(?<![\w.])module\.(\w+)(?:\[[^\]]*\])?(?:\.(\w+))?/g)) {
    references.push({
      kind: 'module',
      name: match[1] as string,
      attribute: match[2],
      text: match[0],
    });
  }
  for (const [text, type = '', name = ''] of expression.matchAll(/(?<![\w.])data\.(\w+)\.(\w+)/g)) {
    references.push({ kind: 'data', name: `${type}.${name}`, text });
  }
  for (const [text, type = '', name = ''] of expression.matchAll(/(?<![\w.])(aws_\w+)\.(\w+)/g)) {
    references.push({ kind: 'resource', name: `${type}.${name}`, text });
  }
  return references;
}

/** All problems found in one module and in the local modules it calls. */
export async function checkModule(module: TerraformModule, base: string): Promise<string[]> {
  const problems: string[] = [];
  const where = (file: string) => relative(base, file);

  for (const resource of module.resources) checkTyped('resource', resource, problems, base);
  for (const data of module.data) checkTyped('data', data, problems, base);
  const providerSchema = awsProviderSchema();
  for (const provider of module.providers) {
    if (provider.name !== 'aws') {
      problems.push(
        `${where(provider.file)}: provider "${provider.name}" cannot be checked offline`,
      );
      continue;
    }
    checkBody(
      provider.body,
      providerSchema,
      `${where(provider.file)}: provider "aws"`,
      new Set(['alias']),
      problems,
    );
  }

  const variables = new Set(module.variables.map((variable) => variable.name));
  const locals = new Set(module.locals.map((local) => local.name));
  const resources = new Set(
    module.resources.map((resource) => `${resource.type}.${resource.name}`),
  );
  const data = new Set(module.data.map((source) => `${source.type}.${source.name}`));
  const calledOutputs = new Map<string, Set<string>>();

  for (const call of module.modules) {
    const source = call.body.source;
    if (typeof source !== 'string' || !/^\.\.?\//.test(source)) {
      problems.push(
        `${where(call.file)}: module "${call.name}": only local sources can be checked offline`,
      );
      continue;
    }
    const child = await loadModule(resolve(module.dir, source));
    calledOutputs.set(call.name, new Set(child.outputs.map((output) => output.name)));
    const declared = new Map(child.variables.map((variable) => [variable.name, variable.body]));
    for (const key of Object.keys(call.body)) {
      if (MODULE_META.has(key) || declared.has(key)) continue;
      problems.push(
        `${where(call.file)}: module "${call.name}" passes "${key}", which ${source} does not declare${hint(key, declared.keys())}`,
      );
    }
    for (const [name, body] of declared) {
      if (!('default' in body) && !(name in call.body)) {
        problems.push(
          `${where(call.file)}: module "${call.name}" does not pass required variable "${name}"`,
        );
      }
    }
  }

  const used = new Set<string>();
  const everything: [string, unknown][] = [
    ...module.resources.map((item) => [item.file, item.body] as [string, unknown]),
    ...module.data.map((item) => [item.file, item.body] as [string, unknown]),
    ...module.outputs.map((item) => [item.file, item.body] as [string, unknown]),
    ...module.locals.map((item) => [item.file, item.body] as [string, unknown]),
    ...module.modules.map((item) => [item.file, item.body] as [string, unknown]),
    ...module.providers.map((item) => [item.file, item.body] as [string, unknown]),
    ...module.variables.map((item) => [item.file, item.body.validation] as [string, unknown]),
  ];
  for (const [file, value] of everything) {
    for (const expression of stringsIn(value).filter((text) => text.includes('${'))) {
      for (const reference of referencesIn(expression)) {
        const at = `${where(file)}: ${reference.text}`;
        if (reference.kind === 'var') {
          used.add(reference.name);
          if (!variables.has(reference.name)) {
            problems.push(
              `${at}: no variable "${reference.name}"${hint(reference.name, variables)}`,
            );
          }
        } else if (reference.kind === 'local' && !locals.has(reference.name)) {
          problems.push(`${at}: no local "${reference.name}"${hint(reference.name, locals)}`);
        } else if (reference.kind === 'module') {
          const outputs = calledOutputs.get(reference.name);
          if (!module.modules.some((call) => call.name === reference.name)) {
            problems.push(`${at}: no module "${reference.name}"`);
          } else if (outputs && reference.attribute && !outputs.has(reference.attribute)) {
            problems.push(
              `${at}: module "${reference.name}" has no output "${reference.attribute}"${hint(reference.attribute, outputs)}`,
            );
          }
        } else if (reference.kind === 'data' && !data.has(reference.name)) {
          problems.push(`${at}: no data source ${reference.name}${hint(reference.name, data)}`);
        } else if (reference.kind === 'resource' && !resources.has(reference.name)) {
          problems.push(`${at}: no resource ${reference.name}${hint(reference.name, resources)}`);
        }
      }
    }
  }
  for (const variable of module.variables) {
    const type = variable.body.type;
    if (typeof type === 'string' && !type.startsWith('${')) {
      problems.push(
        `${where(variable.file)}: variable "${variable.name}" has a quoted type; write it bare`,
      );
    }
    if (!used.has(variable.name)) {
      problems.push(
        `${where(variable.file)}: variable "${variable.name}" is declared but never used`,
      );
    }
  }
  return problems;
}

/** Problems with a .tfvars file meant for the module in `dir`: unknown names, missing required. */
export async function checkVariableFile(
  file: string,
  module: TerraformModule,
  suppliedElsewhere: readonly string[],
): Promise<string[]> {
  const values = (await parse(file, readFileSync(file, 'utf8'))) as Body;
  const declared = new Map(module.variables.map((variable) => [variable.name, variable.body]));
  const problems: string[] = [];
  for (const key of Object.keys(values)) {
    if (!declared.has(key)) {
      problems.push(
        `${file}: sets "${key}", which the module does not declare${hint(key, declared.keys())}`,
      );
    }
  }
  for (const [name, body] of declared) {
    if (!('default' in body) && !(name in values) && !suppliedElsewhere.includes(name)) {
      problems.push(`${file}: does not set required variable "${name}"`);
    }
  }
  return problems;
}
