// The AWS provider's schema, read offline from @cdktf/provider-aws. That package is generated from
// the provider's own schema (`terraform providers schema -json`) and ships no JSON copy of it, but
// its TypeScript declarations carry everything a configuration check needs: for each resource
// and data source, `static readonly tfResourceType = "aws_…"`, and for each block one config
// interface whose properties are the arguments. Each property's doc comment links to the
// provider's documentation with the argument's Terraform name as the anchor
// (`…/resources/s3_bucket#force_destroy S3Bucket#force_destroy`), says `x block` for a nested
// block, and the property is optional (`?`) unless the argument is required.
//
// Only the declaration files of the types a configuration uses are read (a few hundred KiB each),
// never the package's 400 MB whole.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LIB = fileURLToPath(
  new URL('../../../node_modules/@cdktf/provider-aws/lib/', import.meta.url),
);

export interface BlockSchema {
  readonly arguments: ReadonlyMap<string, ArgumentSchema>;
}

export interface ArgumentSchema {
  readonly required: boolean;
  /** Set for nested blocks (`name { … }`), absent for attributes (`name = …`). */
  readonly block?: { readonly schema: BlockSchema; readonly repeatable: boolean };
}

export type SchemaKind = 'resource' | 'data';

interface Property {
  readonly terraformName: string;
  readonly required: boolean;
  readonly isBlock: boolean;
  readonly repeatable: boolean;
  readonly typeName: string | undefined;
}

const PROPERTY_RE = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*readonly (\w+)(\?)?: ([^;]*);/g;
const INTERFACE_RE = /^export interface (\w+)(?: extends [\w.]+)? \{$/gm;

/** Interface name → its properties, for one declaration file. */
function readInterfaces(text: string): Map<string, Property[]> {
  const interfaces = new Map<string, Property[]>();
  for (const match of text.matchAll(INTERFACE_RE)) {
    const start = (match.index ?? 0) + match[0].length;
    const end = text.indexOf('\n}', start);
    const body = text.slice(start, end);
    const properties: Property[] = [];
    for (const property of body.matchAll(PROPERTY_RE)) {
      const [, doc = '', camelName = '', optional, type = ''] = property;
      const anchor = /#(\w+) \w+#\w+\}/.exec(doc);
      if (!anchor) {
        throw new Error(`no Terraform name in the doc comment of ${match[1]}.${camelName}`);
      }
      const typeName = /^(\w+)(\[\])?/.exec(type.trim());
      properties.push({
        terraformName: anchor[1] as string,
        required: optional === undefined,
        isBlock: /^\s*\*\s*\w+ block\s*$/m.test(doc),
        repeatable: typeName?.[2] === '[]',
        typeName: typeName?.[1],
      });
    }
    interfaces.set(match[1] as string, properties);
  }
  return interfaces;
}

function toBlockSchema(interfaces: Map<string, Property[]>, name: string): BlockSchema {
  const properties = interfaces.get(name);
  if (!properties) throw new Error(`no interface ${name} in the provider's declarations`);
  const args = new Map<string, ArgumentSchema>();
  for (const property of properties) {
    if (!property.isBlock) {
      args.set(property.terraformName, { required: property.required });
      continue;
    }
    if (!property.typeName)
      throw new Error(`block ${property.terraformName} of ${name} has no type`);
    args.set(property.terraformName, {
      required: property.required,
      block: {
        schema: toBlockSchema(interfaces, property.typeName),
        repeatable: property.repeatable,
      },
    });
  }
  return { arguments: args };
}

/** The directory of a type: aws_s3_bucket → s3-bucket, data aws_region → data-aws-region. */
function directoryOf(kind: SchemaKind, type: string): string {
  const base = type.replace(/^aws_/, '').replaceAll('_', '-');
  return kind === 'data' ? `data-aws-${base}` : base;
}

function parseDeclarations(directory: string, expectedType: string | undefined) {
  const text = readFileSync(join(LIB, directory, 'index.d.ts'), 'utf8');
  if (expectedType !== undefined) {
    const declared = /static readonly tfResourceType = "([^"]+)";/.exec(text)?.[1];
    if (declared !== expectedType) return undefined;
  }
  const config = /^export interface (\w+Config) extends cdktf\.TerraformMetaArguments \{$/m.exec(
    text,
  )?.[1];
  const interfaces = readInterfaces(text);
  return { interfaces, config };
}

const cache = new Map<string, BlockSchema | undefined>();

/** The schema of a resource or data source type, or undefined when the provider has no such type. */
export function awsSchemaOf(kind: SchemaKind, type: string): BlockSchema | undefined {
  const key = `${kind}:${type}`;
  if (cache.has(key)) return cache.get(key);
  let schema: BlockSchema | undefined;
  const directory = directoryOf(kind, type);
  if (type.startsWith('aws_') && existsSync(join(LIB, directory, 'index.d.ts'))) {
    const parsed = parseDeclarations(directory, type);
    if (parsed?.config) schema = toBlockSchema(parsed.interfaces, parsed.config);
  }
  cache.set(key, schema);
  return schema;
}

/** The arguments of the `provider "aws"` block itself. */
export function awsProviderSchema(): BlockSchema {
  const parsed = parseDeclarations('provider', undefined);
  if (!parsed) throw new Error('no provider declarations in @cdktf/provider-aws');
  return toBlockSchema(parsed.interfaces, 'AwsProviderConfig');
}

let typeNames: { resource: string[]; data: string[] } | undefined;

/** Every type name the provider has, guessed from directory names; used for suggestions only. */
export function awsTypeNames(kind: SchemaKind): string[] {
  typeNames ??= (() => {
    const directories = readdirSync(LIB, { withFileTypes: true }).filter((entry) =>
      entry.isDirectory(),
    );
    const names = directories.map((entry) => entry.name);
    return {
      data: names
        .filter((name) => name.startsWith('data-aws-'))
        .map((name) => `aws_${name.slice('data-aws-'.length).replaceAll('-', '_')}`),
      resource: names
        .filter((name) => !name.startsWith('data-aws-') && name !== 'provider')
        .map((name) => `aws_${name.replaceAll('-', '_')}`),
    };
  })();
  return typeNames[kind];
}

/** The provider version the declarations were generated from, e.g. 6.25.0. */
export function awsProviderVersion(): string {
  const text = readFileSync(join(LIB, 's3-bucket', 'index.d.ts'), 'utf8');
  const version = /hashicorp\/aws\/([\d.]+)\//.exec(text)?.[1];
  if (!version) throw new Error('cannot tell the AWS provider version of @cdktf/provider-aws');
  return version;
}
