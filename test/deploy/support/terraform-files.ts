// Where the Terraform lives, and what the example expects from the environment.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const TERRAFORM = join(ROOT, 'terraform');
export const REGION = join(TERRAFORM, 'modules', 'region');
export const EXAMPLE_VARS = join(TERRAFORM, 'examples', 'two-regions', 'two-regions.tfvars');
/** Secrets the example expects from TF_VAR_* rather than from its file. */
export const SECRET_VARIABLES = ['client_tokens', 'peer_token', 'redis_auth_token'];
