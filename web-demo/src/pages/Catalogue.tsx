// The catalogue: search, category filter, sort, cursor pages, stock badges.
import { useEffect, useState, type FormEvent } from 'react';
import { useQuery } from 'urql';
import { CatalogueDocument, CategoriesDocument, type ProductSort } from '../gql/graphql';
import { money } from '../format';
import { Link, navigate } from '../router';
import { AddToBasket, StockBadge } from './parts';

const PAGE_SIZE = 12;
const SORTS: { value: ProductSort; label: string }[] = [
  { value: 'NEWEST', label: 'Newest' },
  { value: 'NAME', label: 'Name' },
  { value: 'PRICE', label: 'Price: low to high' },
  { value: 'PRICE_DESC', label: 'Price: high to low' },
];

export function Catalogue({ params }: { params: URLSearchParams }) {
  const search = params.get('q') ?? '';
  const category = params.get('category') ?? '';
  const sortParam = params.get('sort');
  const sort = (SORTS.find((s) => s.value === sortParam)?.value ?? 'NEWEST') as ProductSort;
  // Cursors of the pages before this one (keyset pagination goes forward;
  // going back pops the stack).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [draft, setDraft] = useState(search);
  useEffect(() => {
    setCursors([null]);
    setDraft(search);
  }, [search, category, sort]);

  const after = cursors[cursors.length - 1];
  const [{ data, fetching, error }] = useQuery({
    query: CatalogueDocument,
    variables: {
      first: PAGE_SIZE,
      after,
      sort,
      filter: { search: search || undefined, category: category || undefined },
    },
  });
  const [{ data: categories }] = useQuery({ query: CategoriesDocument, requestPolicy: 'cache-first' });

  const setParam = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    const query = next.toString();
    navigate(query ? `/?${query}` : '/');
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setParam('q', draft.trim());
  };

  const products = data?.products;
  const page = cursors.length;
  return (
    <section>
      <h1>Catalogue</h1>
      <form className="filters" role="search" onSubmit={submit}>
        <div className="field">
          <label htmlFor="search">Search</label>
          <input id="search" type="search" value={draft} onChange={(e) => setDraft(e.target.value)} />
        </div>
        <button type="submit">Search</button>
        <div className="field">
          <label htmlFor="category">Category</label>
          <select id="category" value={category} onChange={(e) => setParam('category', e.target.value)}>
            <option value="">All categories</option>
            {categories?.categories.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="sort">Sort by</label>
          <select id="sort" value={sort} onChange={(e) => setParam('sort', e.target.value)}>
            {SORTS.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </div>
      </form>
      <p aria-live="polite" className="muted" data-testid="result-count">
        {fetching && !products
          ? 'Loading…'
          : products
            ? `${products.totalCount} product${products.totalCount === 1 ? '' : 's'}${search ? ` matching “${search}”` : ''} · page ${page}`
            : ''}
      </p>
      {error && (
        <p role="alert" className="error">
          The catalogue could not be loaded: {error.message}
        </p>
      )}
      <ul className="grid" aria-label="Products">
        {products?.edges.map(({ node }) => (
          <li key={node.id} className="card">
            <h2>
              <Link href={`/products/${node.id}`}>{node.name}</Link>
            </h2>
            <p className="muted category">{node.category}</p>
            <p className="price">{money(node.price)}</p>
            <StockBadge quantity={node.stockQuantity} />
            <AddToBasket productId={node.id} name={node.name} disabled={!node.inStock} />
          </li>
        ))}
      </ul>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={page <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Previous page
        </button>
        <button
          type="button"
          disabled={!products?.pageInfo.hasNextPage}
          onClick={() => {
            const end = products?.pageInfo.endCursor;
            if (end) setCursors((c) => [...c, end]);
          }}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}
