//! What the executor needs to know about the API schema: the declared type
//! of every field (for null propagation and list shapes) and which object
//! types belong to each interface or union (for fragments on abstract
//! types). Built once per loaded supergraph from the public API schema.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use graphql_tools::static_graphql::schema::{Definition, Document, Type, TypeDefinition};

/// A field's declared type, with its wrappers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    /// A named type (`Product`, `String`).
    Named(String),
    /// `[T]`.
    List(Box<TypeRef>),
    /// `T!`.
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    fn from_ast(ty: &Type) -> Self {
        match ty {
            Type::NamedType(name) => Self::Named(name.clone()),
            Type::ListType(inner) => Self::List(Box::new(Self::from_ast(inner))),
            Type::NonNullType(inner) => Self::NonNull(Box::new(Self::from_ast(inner))),
        }
    }

    /// The named type under all wrappers.
    pub fn named(&self) -> &str {
        match self {
            Self::Named(name) => name,
            Self::List(inner) | Self::NonNull(inner) => inner.named(),
        }
    }
}

/// The API schema, indexed by type and field name.
#[derive(Debug, Default)]
pub struct SchemaIndex {
    fields: HashMap<String, HashMap<String, TypeRef>>,
    possible_types: HashMap<String, HashSet<String>>,
    objects: HashSet<String>,
    enums: HashMap<String, HashSet<String>>,
}

impl SchemaIndex {
    /// Indexes the public API schema (`planner.consumer_schema.document`).
    pub fn new(api_schema: &Document) -> Self {
        let mut index = Self::default();
        let mut implementations: Vec<(String, String)> = Vec::new();
        for definition in &api_schema.definitions {
            let Definition::TypeDefinition(definition) = definition else {
                continue;
            };
            match definition {
                TypeDefinition::Object(object) => {
                    index.add_fields(&object.name, &object.fields);
                    index.objects.insert(object.name.clone());
                    for interface in &object.implements_interfaces {
                        implementations.push((interface.clone(), object.name.clone()));
                    }
                }
                TypeDefinition::Interface(interface) => {
                    index.add_fields(&interface.name, &interface.fields);
                    index
                        .possible_types
                        .entry(interface.name.clone())
                        .or_default();
                }
                TypeDefinition::Union(union) => {
                    index
                        .possible_types
                        .entry(union.name.clone())
                        .or_default()
                        .extend(union.types.iter().cloned());
                }
                TypeDefinition::Enum(enumeration) => {
                    index.enums.insert(
                        enumeration.name.clone(),
                        enumeration.values.iter().map(|v| v.name.clone()).collect(),
                    );
                }
                _ => {}
            }
        }
        for (interface, object) in implementations {
            index
                .possible_types
                .entry(interface)
                .or_default()
                .insert(object);
        }
        index
    }

    fn add_fields(
        &mut self,
        type_name: &str,
        fields: &[graphql_tools::static_graphql::schema::Field],
    ) {
        self.fields.insert(
            type_name.to_owned(),
            fields
                .iter()
                .map(|field| (field.name.clone(), TypeRef::from_ast(&field.field_type)))
                .collect(),
        );
    }

    /// The declared type of `type_name.field_name`, if the API has it.
    pub fn field_type(&self, type_name: &str, field_name: &str) -> Option<&TypeRef> {
        self.fields.get(type_name)?.get(field_name)
    }

    /// Whether an object of type `runtime_type` matches a fragment on `condition`.
    pub fn satisfies(&self, runtime_type: &str, condition: &str) -> bool {
        runtime_type == condition
            || self
                .possible_types
                .get(condition)
                .is_some_and(|members| members.contains(runtime_type))
    }

    /// Whether the API has an object type called `type_name` (an
    /// `@inaccessible` type is not in the API).
    pub fn has_object_type(&self, type_name: &str) -> bool {
        self.objects.contains(type_name)
    }

    /// The values of enum `type_name`, if it is an enum of the API.
    pub fn enum_values(&self, type_name: &str) -> Option<&HashSet<String>> {
        self.enums.get(type_name)
    }

    /// Whether `type_name` is an interface or a union.
    pub fn is_abstract(&self, type_name: &str) -> bool {
        self.possible_types.contains_key(type_name)
    }
}
