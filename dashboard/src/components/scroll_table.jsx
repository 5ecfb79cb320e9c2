// A console table: a keyboard-scrollable region (wide tables scroll inside it, never the page) with
// a header row. `columns` are header texts, or [text, class] ('num' right-aligns).
export function ScrollTable({ label, testid, columns, children }) {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label={label}>
      <table data-testid={testid}>
        <thead>
          <tr>
            {columns.map((c) => {
              const [text, cls] = Array.isArray(c) ? c : [c, undefined];
              return (
                <th scope="col" class={cls} key={text}>
                  {text}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
