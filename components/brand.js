// The skip link and the logo link that open every page's header, as one element (fixed markup, no visitor text).
// The wrapper lays the two links out as the header's own children (display: contents).
export default {
  template: `
    <span class="r-contents">
      <a class="nicegui-link r-skip" href="#main">Skip to content</a>
      <a class="nicegui-link r-brand" href="/" aria-label="Rupali home">
        <img class="r-logo" src="/assets/logo.svg" alt=""><span class="r-brand-name">Rupali</span>
      </a>
    </span>
  `,
};
