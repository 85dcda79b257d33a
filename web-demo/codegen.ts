// GraphQL Code Generator: typed documents for every operation in
// src/operations/*.graphql, from the router's public API schema.
// `npm run codegen` (also the first step of `npm run build`).
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../schema/api.graphql',
  documents: ['src/operations/*.graphql'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { Decimal: 'string', DateTime: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
