// Admin (an admin token): create and edit products, adjust stock, refund
// payments. The router refuses these operations to anyone else.
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import {
  AdjustStockDocument,
  AdminPaymentsDocument,
  AdminProductsDocument,
  CreateProductDocument,
  RefundPaymentDocument,
  UpdateProductDocument,
  type AdminProductFragment,
  type PaymentStatus,
} from '../gql/graphql';
import { problem } from '../errors';
import { money, when } from '../format';

export function AdminPage() {
  return (
    <section>
      <h1>Admin</h1>
      <Products />
      <Payments />
    </section>
  );
}

function Products() {
  const [search, setSearch] = useState('');
  const [draft, setDraft] = useState('');
  const [editing, setEditing] = useState<AdminProductFragment | 'new' | null>(null);
  const [{ data, error }] = useQuery({
    query: AdminProductsDocument,
    variables: { first: 10, search: search || undefined },
  });
  return (
    <section aria-labelledby="admin-products">
      <h2 id="admin-products">Products</h2>
      <form
        className="filters"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          setSearch(draft.trim());
        }}
      >
        <div className="field">
          <label htmlFor="admin-search">Find a product</label>
          <input id="admin-search" type="search" value={draft} onChange={(e) => setDraft(e.target.value)} />
        </div>
        <button type="submit">Find</button>
        <button type="button" className="secondary" onClick={() => setEditing('new')}>
          New product
        </button>
      </form>
      {error && <p role="alert" className="error">{problem(error)?.message}</p>}
      {editing && (
        <ProductForm
          product={editing === 'new' ? null : editing}
          onDone={() => setEditing(null)}
        />
      )}
      <table className="lines">
        <caption className="visually-hidden">Products ({data?.products.totalCount ?? 0})</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Price</th>
            <th scope="col">Stock</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {data?.products.edges.map(({ node }) => (
            <tr key={node.id}>
              <th scope="row">{node.name}</th>
              <td>{money(node.price)}</td>
              <td data-testid="admin-stock">{node.stockQuantity}</td>
              <td>
                <button type="button" className="link" onClick={() => setEditing(node)} aria-label={`Edit ${node.name}`}>
                  Edit
                </button>
                <AdjustStock product={node} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function AdjustStock({ product }: { product: AdminProductFragment }) {
  const [state, adjust] = useMutation(AdjustStockDocument);
  const [delta, setDelta] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const value = Number(delta);
    if (!Number.isInteger(value) || value === 0) {
      setMessage('Enter a whole number of units to add (negative to remove).');
      return;
    }
    const result = await adjust({ id: product.id, delta: value });
    setMessage(problem(result.error)?.message ?? `Stock is now ${result.data?.adjustStock.stockQuantity}.`);
    if (!result.error) setDelta('');
  };
  return (
    <form className="inline" onSubmit={submit}>
      <label htmlFor={`delta-${product.id}`} className="visually-hidden">
        Units to add to {product.name}
      </label>
      <input
        id={`delta-${product.id}`}
        className="short"
        inputMode="numeric"
        placeholder="±units"
        value={delta}
        onChange={(e) => setDelta(e.target.value)}
      />
      <button type="submit" disabled={state.fetching} aria-label={`Adjust stock of ${product.name}`}>
        Adjust stock
      </button>
      <span role="status" className="muted">
        {message}
      </span>
    </form>
  );
}

function ProductForm({ product, onDone }: { product: AdminProductFragment | null; onDone: () => void }) {
  const [createState, create] = useMutation(CreateProductDocument);
  const [updateState, update] = useMutation(UpdateProductDocument);
  const [fields, setFields] = useState({
    name: product?.name ?? '',
    description: product?.description ?? '',
    price: product?.price.amount ?? '',
    category: product?.category ?? '',
    imageUrl: product?.imageUrl ?? '',
    stockQuantity: String(product?.stockQuantity ?? 0),
  });
  const [message, setMessage] = useState<string | null>(null);
  const set = (name: keyof typeof fields) => (event: { target: { value: string } }) =>
    setFields({ ...fields, [name]: event.target.value });
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const common = {
      name: fields.name,
      description: fields.description || null,
      price: fields.price,
      category: fields.category,
      imageUrl: fields.imageUrl || null,
    };
    const result = product
      ? await update({ id: product.id, input: common })
      : await create({ input: { ...common, stockQuantity: Number(fields.stockQuantity) } });
    const failed = problem(result.error);
    if (failed) setMessage(failed.message);
    else onDone();
  };
  const id = product ? `edit-${product.id}` : 'new';
  return (
    <form className="panel" onSubmit={submit} aria-label={product ? `Edit ${product.name}` : 'New product'}>
      <h3>{product ? `Edit ${product.name}` : 'New product'}</h3>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input id={`${id}-name`} required value={fields.name} onChange={set('name')} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-description`}>Description</label>
        <textarea id={`${id}-description`} value={fields.description} onChange={set('description')} />
      </div>
      <div className="row">
        <div className="field">
          <label htmlFor={`${id}-price`}>Price</label>
          <input id={`${id}-price`} required inputMode="decimal" value={fields.price} onChange={set('price')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-category`}>Category</label>
          <input id={`${id}-category`} required value={fields.category} onChange={set('category')} />
        </div>
        {!product && (
          <div className="field">
            <label htmlFor={`${id}-stock`}>Stock</label>
            <input id={`${id}-stock`} inputMode="numeric" value={fields.stockQuantity} onChange={set('stockQuantity')} />
          </div>
        )}
      </div>
      <div className="field">
        <label htmlFor={`${id}-image`}>Image URL</label>
        <input id={`${id}-image`} type="url" value={fields.imageUrl} onChange={set('imageUrl')} />
      </div>
      <button type="submit" disabled={createState.fetching || updateState.fetching}>
        {product ? 'Save changes' : 'Create product'}
      </button>{' '}
      <button type="button" className="secondary" onClick={onDone}>
        Close
      </button>
      {message && (
        <p role="alert" className="error">
          {message}
        </p>
      )}
    </form>
  );
}

const STATUSES: PaymentStatus[] = ['COMPLETED', 'PARTIALLY_REFUNDED', 'REFUNDED', 'PENDING', 'FAILED', 'CANCELLED'];

function Payments() {
  // Every status by default: a refunded payment stays in view (with the
  // refund's answer) instead of leaving a COMPLETED-only list.
  const [status, setStatus] = useState<PaymentStatus | ''>('');
  const [{ data, error }] = useQuery({
    query: AdminPaymentsDocument,
    variables: { first: 20, status: status || undefined },
  });
  return (
    <section aria-labelledby="admin-payments">
      <h2 id="admin-payments">Payments</h2>
      <div className="field">
        <label htmlFor="payment-status">Status</label>
        <select id="payment-status" value={status} onChange={(e) => setStatus(e.target.value as PaymentStatus | '')}>
          <option value="">Any</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      {error && <p role="alert" className="error">{problem(error)?.message}</p>}
      <ul className="orders">
        {data?.payments.edges.map(({ node }) => (
          <li key={node.id} className="order">
            <strong>{money(node.amount)}</strong> {node.status}
            <span className="muted"> · {when(node.createdAt)} · {node.items.map((i) => `${i.quantity} × ${i.productName}`).join(', ')}</span>
            {Number(node.refundedAmount.amount) > 0 && <span> · refunded {money(node.refundedAmount)}</span>}
            {(node.status === 'COMPLETED' || node.status === 'PARTIALLY_REFUNDED') && <Refund id={node.id} />}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Refund({ id }: { id: string }) {
  const [state, refund] = useMutation(RefundPaymentDocument);
  const [amount, setAmount] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await refund({ id, amount: amount.trim() || null });
    setMessage(problem(result.error)?.message ?? `Now ${result.data?.refundPayment.status}.`);
  };
  return (
    <form className="inline" onSubmit={submit}>
      <label htmlFor={`refund-${id}`}>Refund amount</label>
      <input id={`refund-${id}`} className="short" inputMode="decimal" placeholder="all" value={amount} onChange={(e) => setAmount(e.target.value)} />
      <button type="submit" disabled={state.fetching}>
        Refund
      </button>
      <span role="status" className="muted">
        {message}
      </span>
    </form>
  );
}
