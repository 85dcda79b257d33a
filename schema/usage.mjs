// Which registered operations a schema change breaks: the coordinates an
// operation uses, and the coordinate a change affects. Used by
// breaking.mjs; tested by usage.test.mjs.

import {
  TypeInfo,
  getNamedType,
  isEnumType,
  isInputObjectType,
  typeFromAST,
  visit,
  visitWithTypeInfo,
} from 'graphql';

/// Every schema coordinate `document` touches in `schema`: types
/// (`Product`), fields (`Product.price`), arguments
/// (`Query.products.first`), and — for input and enum types an operation
/// passes or reads — all their input fields and values (variable values
/// are not known ahead, so all of them count).
export function coordinatesOf(document, schema) {
  const used = new Set();
  const seenTypes = new Set();
  const useType = (type) => {
    const named = type && getNamedType(type);
    if (!named || seenTypes.has(named.name)) return;
    seenTypes.add(named.name);
    used.add(named.name);
    if (isInputObjectType(named)) {
      for (const field of Object.values(named.getFields())) {
        used.add(`${named.name}.${field.name}`);
        useType(field.type);
      }
    } else if (isEnumType(named)) {
      for (const value of named.getValues()) used.add(`${named.name}.${value.name}`);
    }
  };
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition(node) {
        const root = schema.getRootType(node.operation);
        if (root) used.add(root.name);
      },
      VariableDefinition(node) {
        useType(typeFromAST(schema, node.type));
      },
      Field(node) {
        const parent = typeInfo.getParentType();
        const field = typeInfo.getFieldDef();
        if (!parent || !field) return;
        used.add(parent.name);
        used.add(`${parent.name}.${field.name}`);
        useType(field.type);
      },
      Argument(node) {
        const parent = typeInfo.getParentType();
        const field = typeInfo.getFieldDef();
        const argument = typeInfo.getArgument();
        if (!parent || !field || !argument) return;
        used.add(`${parent.name}.${field.name}.${argument.name}`);
        useType(argument.type);
      },
      InlineFragment() {
        const type = typeInfo.getType();
        if (type) used.add(getNamedType(type).name);
      },
      FragmentDefinition() {
        const type = typeInfo.getType();
        if (type) used.add(getNamedType(type).name);
      },
    }),
  );
  return used;
}

/// The coordinate whose users `change` breaks: a new required argument or
/// input field breaks whoever uses the field or input type it is added to;
/// anything else breaks whoever uses what it names (or anything inside it).
export function affectedCoordinate(change) {
  const path = change.path ?? '';
  if (change.type === 'FIELD_ARGUMENT_ADDED' || change.type === 'INPUT_FIELD_ADDED') {
    return path.split('.').slice(0, -1).join('.');
  }
  return path;
}

/// The registered operations (`usages`: each with the coordinates it uses)
/// that `change` breaks.
export function operationsBrokenBy(change, usages) {
  const target = affectedCoordinate(change);
  if (!target) return [];
  return usages
    .filter(({ used }) => used.has(target) || [...used].some((c) => c.startsWith(`${target}.`)))
    .map(({ operation }) => operation);
}
